"""Word classes for the gate analysis: a closed-class (function-word) list of English.

No POS tagger is available offline here (the paper uses spaCy's ``en_core_web_sm``), so words are
classed by list: a word in :data:`FUNCTION_WORDS` (determiners, pronouns, prepositions,
conjunctions, auxiliaries and modals, particles, wh-words, negation, quantifiers, common
closed-class adverbs, and the pieces GPT-2-style pre-tokenisation cuts contractions into:
``don`` + ``'t``) is a *function* word; a token without letters or digits is *punct*; a
number is *number*; everything else is a *content* word (nouns, main verbs, adjectives, adverbs).

For the generated shapes captions, :func:`shapes_word_class` refines content words into
``colour``, ``shape`` and ``position`` (the words whose identity only the image reveals).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "FUNCTION_WORDS",
    "WORD_CLASSES",
    "normalise_word",
    "shapes_word_class",
    "word_class",
]

_DETERMINERS = """a an the this that these those my your his her its our their whose which what
some any no every each either neither another other such all both half several many much more most
few fewer less least enough""".split()
_PRONOUNS = """i me myself you yourself yourselves he him himself she her herself it itself we us
ourselves they them themselves mine yours hers ours theirs one ones oneself someone somebody something
anyone anybody anything everyone everybody everything nobody nothing none whoever whatever whomever
who whom""".split()
_PREPOSITIONS = """about above across after against along amid among amongst around as at before
behind below beneath beside besides between beyond by despite down during except for from in inside
into like near of off on onto opposite out outside over past per round since than through throughout
till to toward towards under underneath unlike until up upon via with within without""".split()
_CONJUNCTIONS = """and but or nor so yet because although though while whereas if unless whether
once lest than that""".split()
_AUXILIARIES = """be am is are was were been being have has had having do does did doing will would
shall should can could may might must ought need dare""".split()
_CONTRACTIONS = """i'm you're he's she's it's we're they're i've you've we've they've i'd you'd
he'd she'd we'd they'd i'll you'll he'll she'll we'll they'll isn't aren't wasn't weren't haven't
hasn't hadn't don't doesn't didn't won't wouldn't shan't shouldn't can't cannot couldn't mustn't
mightn't needn't let's that's there's here's what's who's where's how's 's 're 've 'd 'll 'm n't 't
don doesn didn isn aren wasn weren haven hasn hadn won wouldn shan shouldn couldn mustn mightn needn ca""".split()
_PARTICLES_WH_NEG = """not no yes to there here where when why how wherever whenever however
then now just only also too very quite rather even still already again ever never always often
sometimes soon perhaps maybe else so oh ah uh um hmm okay ok well""".split()

#: closed-class (function) words, lower-case
FUNCTION_WORDS: frozenset[str] = frozenset(
    _DETERMINERS
    + _PRONOUNS
    + _PREPOSITIONS
    + _CONJUNCTIONS
    + _AUXILIARIES
    + _CONTRACTIONS
    + _PARTICLES_WH_NEG
)

_COLOURS = frozenset("red green blue yellow purple orange white black grey gray pink brown".split())
_SHAPES = frozenset("circle square triangle diamond cross star".split())
_POSITIONS = frozenset("top bottom left right middle centre center".split())

#: every class name the functions here can return
WORD_CLASSES = ("function", "content", "number", "punct", "colour", "shape", "position")


def normalise_word(word: str) -> str:
    """Lower-case, strip surrounding whitespace and quotes (``"Don't,"`` -> ``don't,``), unify apostrophes."""
    return word.strip().lower().replace("\u2019", "'").strip('"\u201c\u201d\u2018')


def word_class(word: str) -> str:
    """``function`` / ``content`` / ``number`` / ``punct`` for one (pre-tokenised) word."""
    w = normalise_word(word)
    if not any(c.isalnum() for c in w):
        return "punct"
    core = w.strip(".,;:!?()[]{}-")
    if core in FUNCTION_WORDS:
        return "function"
    if core.replace(".", "").replace(",", "").isdigit():
        return "number"
    return "content"


def shapes_word_class(word: str) -> str:
    """Like :func:`word_class`, with content words of the shapes captions split into
    ``colour``, ``shape`` and ``position``."""
    w = normalise_word(word).strip(".,;:!?")
    if w in _COLOURS:
        return "colour"
    if w in _SHAPES:
        return "shape"
    if w in _POSITIONS:
        return "position"
    return word_class(word)


Classifier = Callable[[str], str]
