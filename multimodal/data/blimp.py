"""BLiMP (Warstadt et al., TACL 2020): 67 paradigms x 1000 minimal pairs, ``data/<paradigm>.jsonl[.gz]``.

Each line holds ``sentence_good``, ``sentence_bad``, ``UID`` (the paradigm), ``field``,
``linguistics_term`` and ``pairID`` (see the dataset's README). :func:`read_blimp` reads the
pairs of the paradigms asked for; the evaluation (a pair counts when
``log p(good) > log p(bad)``) is :func:`gatelab.multimodal.analysis.evaluation.blimp_accuracy`.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections.abc import Iterable
from pathlib import Path

from gatelab.core.harness import DatasetSpec

__all__ = ["BLIMP", "BLIMP_DIGESTS", "BLIMP_PARADIGMS", "MinimalPair", "read_blimp"]

#: paradigm -> (sha256 of data/<paradigm>.jsonl, sha256 of data/<paradigm>.jsonl.gz) from SOURCE.txt
BLIMP_DIGESTS: dict[str, tuple[str, str]] = {
    "adjunct_island": (
        "ecc71c452516de03deeb9262b4203e45220dc52727327a08eef07c79c01eac8b",
        "2a3c0a2caf393ba28bdd483d77b2be1ad21d8cdf030a3aadec27183fec170ce3",
    ),
    "anaphor_gender_agreement": (
        "fd7d6e47196fa1310a251d3aa88ae9a62bb64d3cec35fc02617229d5799767e1",
        "2bf4760c13783530e084a886a12921878a444db9ad9399a373a40799e9c6f30b",
    ),
    "anaphor_number_agreement": (
        "05c16b8bfe4feb5b3552dc2c53d1742ce0c91d9a1c896684335bdddd4373cc9b",
        "627b982b7ce261a90f587109d82ef9e5b6e49e27e761fab517fc85031e874953",
    ),
    "animate_subject_passive": (
        "245e91961cf597150244c3945c6d0033e691b27ba6cf298c62920d355426e70c",
        "d3505daaecc58c453076d4c881c82ce5c93e96f48cf369c0cc0b3ae29ce25b58",
    ),
    "animate_subject_trans": (
        "a7bffeda200f648c33dd215d91d8f5756fcd1e3f410bab467f1ed9235f215850",
        "1a9495897ea1dec9184d1c9db85fa0bc37f485227bb6173dbfed5ff7ee9bb2d4",
    ),
    "causative": (
        "2e1006cc24094a3049586888105b22181d77e09e11dea65a326b49977bb366f1",
        "006ba71cded6cc19cb538b16ba446d60ea8b0f958cc034701e0daee39fd36449",
    ),
    "complex_NP_island": (
        "1c92472731dd9a21eb222d64bee756042a3763c3797b5283d5b84ab8e3cbb74c",
        "27fb1ab4af43d555bd8a8efd0de1d6ccf497e1c908f762cf85deed1121a91734",
    ),
    "coordinate_structure_constraint_complex_left_branch": (
        "47e0e04efeb320449a8eb2ac722b895041a8609580fec2880dbc719f50fba194",
        "257242938582b81139a28de2a8f50add2d6ea575342f1e9087fa041571227cb4",
    ),
    "coordinate_structure_constraint_object_extraction": (
        "d01c27a7a893f3ec071a7913efa504d297671d86a987f26ddb565de914db2fd7",
        "bbe8ee7ceee7d74ebf577ce4640b03181919b287222d31911f0c4f1f06942e81",
    ),
    "determiner_noun_agreement_1": (
        "f48065fd760d0fd1a895012860d38bdf3c2ac115cd221e521684cc430c0f1855",
        "861d356f2fdd107186acb60172aed93b2517e34c493bc76be432ea52e4e483c2",
    ),
    "determiner_noun_agreement_2": (
        "8ae7eff7c7bd384ff5ef3113984834f4d78b34559203aa9d5cb14ea8394291a9",
        "037ce2077930a005cb8aedbde0df58322d05589adc125c7b400d52ab5d390d1d",
    ),
    "determiner_noun_agreement_irregular_1": (
        "4f350e88db9e29e53ae96f1f0b5991c7809fd4fd403190907330b721e1e6e264",
        "5a3d0e26492799f0ea87c4a238241eda0c9cc3bff8581b284dc1f8eff6d114bb",
    ),
    "determiner_noun_agreement_irregular_2": (
        "d688af0ccd0614d24a936e0929276784f37554f3ad3e247c3bade8dcaa9099df",
        "ca0e2b89f4222e60f5bb9d3c41f5e0c39877b5793f2a5cab96bcb231baaf4e64",
    ),
    "determiner_noun_agreement_with_adj_2": (
        "8d2828d7dfbfc3f7191024514060fedb033ea2e232304f63448c33051a85d2b3",
        "4ad7fd35d6238dbb711a62ec25cbd8d8a784ebfb21dbba0dd5477b0ef10b3008",
    ),
    "determiner_noun_agreement_with_adj_irregular_1": (
        "1f4c6e42a48f4220afec629679641479feac3883cd7fa346d9e9e129cd7e8f55",
        "895a9d392aee9129a3fd9de69657f1a8ab7102655e33c5aae21ae7ea871bd04c",
    ),
    "determiner_noun_agreement_with_adj_irregular_2": (
        "aa3f297a7ce0c03b5fc00458834f89e54eb855973be098497f766a390b4bc669",
        "4fb42206926153af9eb507beea1782435d70d91efd3d88d4cc7ae4f3a0e0e1b5",
    ),
    "determiner_noun_agreement_with_adjective_1": (
        "2c3de4e7b7aea499fb7cf1b23b9c3b63662289880f991b9ffabe5ceb94cf7430",
        "f4c4ff43787c0c78e3ee2b3776391af88ef9347b9a64ccc01f506c43b5fffd50",
    ),
    "distractor_agreement_relational_noun": (
        "37c1553f4c6594b162256edce0f6b40bad1898b311c8aaa69605b526b6494a34",
        "d60ca89e28517f9b668f37f8db9c277eff180fd48d713f7dd565d3d6c3cbe805",
    ),
    "distractor_agreement_relative_clause": (
        "854728b6db8f23f12583f7332b654835351eaedb50783e6f2a3bf6c101b8c422",
        "388844fd37aae9b1b36d79db5d59ca0082cbae420c59bbfe40da436c1c706ac5",
    ),
    "drop_argument": (
        "e262339a262a57a8f56dc41941ee1dc32c62eb97054b27d33cd8c356a6e62064",
        "e24b0d64128b82a54aada8395218ae1bf250a1ceaa22e3b6e832b3f54a85fcf7",
    ),
    "ellipsis_n_bar_1": (
        "3cc0bcf91631a4476ce573ea9dbf9627d52efbe071c26019e2c2448b68769d09",
        "98db398024999c5b32abd7b5dd3722f179f48813446544aa366b5e759346ce8f",
    ),
    "ellipsis_n_bar_2": (
        "3dfc2b378ea4867186917ec9cce5ce927e4d3bb6addf018bc31b870dd2aa8474",
        "ee33c60a7f3bb69734437a33162d34ff4b9a9b2afb3a8c83edb24bbfe674b345",
    ),
    "existential_there_object_raising": (
        "3781bfd54ec1208fc634f4d365189f948ec246526a7345b5148dd3ab6023ff4f",
        "63b3466922c8497d5c0bac47e1c915963b95e913b4afbc22a00d13580f582139",
    ),
    "existential_there_quantifiers_1": (
        "4bd0f6dee3c1824b51b0dafb9fce2b00933e8053fcd4a7b99b6202e1b8b49f9e",
        "d9bb500a3c58ba35d26491d33c815d07d641078c15b2d0d5a0f0a9f0f4b84f9f",
    ),
    "existential_there_quantifiers_2": (
        "b1a80f4ebebae90a90927259f95b680059020e6bb4e38e64a41eb8e53bc3f617",
        "3901986dc1def866c01852476cd9fee059d64b07cb85f7fb3455fce68c19cff2",
    ),
    "existential_there_subject_raising": (
        "7c6f5b13225f73a777755c1948beef5cfa31d135ae8a0e7ba8853d256fbece23",
        "c4576357835ea8d8817837e92d0b23103a38aae258eee38748bfa60efc0b4747",
    ),
    "expletive_it_object_raising": (
        "15ed3a52c978ecfe5eda7f64b0304b5bd133439cccb2c97fde20834f39874c93",
        "226ecbd5d0f6e7e973ace4623e465497bb4ac7f4f7b1777760afff485d4677c5",
    ),
    "inchoative": (
        "d9389a7130ca84c6f920c9d892cc60c1b20f378d28e7041b1c53ae589fc84f1d",
        "d5d2fa2b0ba795e2903a5b51bc70e3d201b1450780193ed5e36281d09799fb2f",
    ),
    "intransitive": (
        "9af9f3f30c891cd21623922b62fd97685552b4ae94a6cfd5617a5f0cb0f731b3",
        "364c56b74c6052824b4c58be645980b81153ff874d1d6429d2fcbf6930615f5c",
    ),
    "irregular_past_participle_adjectives": (
        "5e490be0723989499391ac14d11b3bb6677f4b470514486b2db3fbfe76d56b3c",
        "81e3dd518d97fae29d1bf249cb70f06c36c6160186893343da46f1538260c2a3",
    ),
    "irregular_past_participle_verbs": (
        "75a990117c1a403d3b479e0fbe170f6919c2408def738ffcea8c62b49b70a555",
        "4e672d0317467eadd2b8666572ed0655d1e6beb4c9ab8057f68cbfceb13d0721",
    ),
    "irregular_plural_subject_verb_agreement_1": (
        "0066174143671bffa54232d89254d14221afab666273edfefdfb625fbb75e226",
        "71dd7c61e621ef53d71045898899d029b30031b0691aa7dceec45de0f3ca2b5b",
    ),
    "irregular_plural_subject_verb_agreement_2": (
        "9b22db814e7b7251f4abafe8beb9616f2f46eaa58f7cdb701cbc737cc8f1a124",
        "a6f7e1915d3abf1393c77dce4c908d53abb206038485f13b66a1bbc33bc9ba86",
    ),
    "left_branch_island_echo_question": (
        "7dadbe3c5a5ceadb78b9408807ac88230ddd748abfe8de8121f064e2bce94ad8",
        "2c7c2fc4ed1fec99cb3338d4c660ae1a84988dd98f065a12f8b39ad9c6b2ecd3",
    ),
    "left_branch_island_simple_question": (
        "e2a64b8a1b7b8d94f931018cf9325836e9c79953a01379233da255eac5e8cd71",
        "b2f7c0b5280aab35c4fe4045c8557ccc175671d379baa93cf94059cb296f4bd6",
    ),
    "matrix_question_npi_licensor_present": (
        "657c9d6e6d50a9cd651881fcbc57cef2fd998611f6f53158ed05e48822fcd2b5",
        "f928c955d1cd9264a02a9e107ebb1fe2eec895e9030732ab736c0ebf00e5037d",
    ),
    "npi_present_1": (
        "9aa85dc5c2b0d85ea51f21db50d6d327ab5b45d1669e386d54b1360d3ac954af",
        "1e262f96087ed4b4b488f34ecf0319c0536504e7f3b4e715b4308a4bbcf09916",
    ),
    "npi_present_2": (
        "52fcfa230a40ae27998273cc08ecd062aad17025c92389df3404a85ed519909b",
        "fa01c95fae57663a59ada8267074d632bf7b31354308bc481c470c34889345a3",
    ),
    "only_npi_licensor_present": (
        "475c6595187a32e4dcfb868d3db90394e89669a94a9312ebd60f88dad1665f1c",
        "81b31db065ea787893a0d946fb43e5edb0f544961bd653948a7dd967ce515672",
    ),
    "only_npi_scope": (
        "ca1f0671643e37936515f02125036bc2904ab9b35c4689b0e7a3ea3914e571f6",
        "e3c19c52fb0ce6d25831c93567605c43474265b9fdd50a86d74641bec19d8877",
    ),
    "passive_1": (
        "e9374307bca5c24e9df18597a0859f7fb5ca4cfe5f136ec894d1ba69f4c90116",
        "2e52ce8e38b3766df399680d28aa8b07cdd528e16d71961540d83ae2d53dc9d7",
    ),
    "passive_2": (
        "4d49e438185bed4122a252dd9ee69bc8eccb2fe6c1b09ccc78198fd925fed8c5",
        "9e8c032852f00c9c6357f75d668f4f916962a4d33a3521b37890f3a50e393aa6",
    ),
    "principle_A_c_command": (
        "74c8111666542c797dee1c38c9e432b0b65751dfa0faa51874a990f2cbfc76fc",
        "e58cd5731ac0433c01db58209789594e8f4986af58eb9b70730413fbafeb278d",
    ),
    "principle_A_case_1": (
        "7efb5246fe315dc2cf56b80739783cffcddee9e52650716cf5aa0f6987f7644d",
        "d79b131b1d6852b0e937911125ff7c8b7d3bed12d8e903f5ae4848a754f75243",
    ),
    "principle_A_case_2": (
        "5de6db4c21a8433bc1f1030e81d5ee151efce02078460f7de7ca5e9566afd914",
        "835f3db1f84b3336ca837fb2662456d33c13c2ec9dd7a85bbe7b4119e2afaad1",
    ),
    "principle_A_domain_1": (
        "2276dc35a51396c7d11a401e378e0f4b31cd10d7916c73e9a361703cb96eddc5",
        "04466a19a3c4b3be0ce1a38deb8aa38f2745c1abb8a87b1fb12aee781e004598",
    ),
    "principle_A_domain_2": (
        "9d14e5ae911fb8ddf571484ef2d6a6e6a053765c1c6d34253aec2c11f7d7306a",
        "016646a00733f925731a945bb48f65365fc390bd010cc3fc42c95e79eb668472",
    ),
    "principle_A_domain_3": (
        "a0d66b9d8541ab1df08f629161c6c4e8bca3aa2693eaa342edd2097e6b579bdd",
        "8ef9b02449278c74e3ffeef32357a2329b4c79448465648dd3da1e899accbed1",
    ),
    "principle_A_reconstruction": (
        "65dc403c4d6e9a609f2c4cc2ec6c8baa05cf6fce89b920a816b0d9932204b2a3",
        "863c418450a9a6d1e82219b354e149027ad1fbcb95f8ecc05f6e365e462dcfca",
    ),
    "regular_plural_subject_verb_agreement_1": (
        "1a18d94062c8e792c0a200a3b00dff0e051a92bb084c05e9b5e5c73bee32a620",
        "8d4f38bf6ab7ba17d1eaa0f0893fbec67d4471ac89214f1785d4ee49bd7c66a0",
    ),
    "regular_plural_subject_verb_agreement_2": (
        "e5b4668811e63b00ac4c9569cb9553281a39c21df43256905ad78e59ae24942c",
        "09781efeb0b642435857bf0ba63b2ed11537aa539cdea3ba4345c85ea9cd484c",
    ),
    "sentential_negation_npi_licensor_present": (
        "c43405aca13ba4aa6ad87f9b051e4ba5fc458f24e683cfe0af23e6e09ec7268b",
        "fb2a9e5ca50ab24a6e75f864f1912ab34c13d6a24783ab066718f77bb51b81e6",
    ),
    "sentential_negation_npi_scope": (
        "6c341ccc39c94bea45c0412986751bf2f6eca48626728e30e23d2b6a22c8b949",
        "9ee68d28cc3e85968bccf716a33f6bcf009fb3bdb92475c9069c2ffda9b7b646",
    ),
    "sentential_subject_island": (
        "a286b67cc5912aafeb06750b38923abf3338786ffa4309e0a6a07b1dbe2444bd",
        "88d0bceadef81f050180852ea21ea3d145a96152e48f7dc6b9c41c9f32e43d6b",
    ),
    "superlative_quantifiers_1": (
        "bebc5c5ff28cf226cc35293c60cde1fcf7565a7b58cb219d01ac8908b952a497",
        "ee50724f20a93fa758ba03161bfedff916775da7f05ae6d8a36333567066ad19",
    ),
    "superlative_quantifiers_2": (
        "4bef08f3e6bd3fbb46021dda34000f3c00222c5576babe4882a8541f6820a106",
        "46af0afe2eea652d9657aea53578dd636530c0f57790a00cff6ae389189661ed",
    ),
    "tough_vs_raising_1": (
        "8eb3a1ecbdbd969c5b77e2f85b12a39d33723bdc58d673e5067bb456da91d0e5",
        "5588b5463d43f31a530a7c7558f4fc2f096e00753e6c1df3fb578134efff8e83",
    ),
    "tough_vs_raising_2": (
        "a6db2f24a8aee0c90a9be63e6bb6787fe04e990c518761115f69f27c7438b5ae",
        "40e1a5262cd5800d3f52f1fa10a888c05e4acf4ceae96155bf83e70c52bf19c7",
    ),
    "transitive": (
        "48de2025571897c7590659c793d2d1ce85c247808d4199bad60f66cf2eb179ef",
        "73b7bcfc61ce8e72b478db2b74109df1df71c777fb117f3272c1b70447f24dcd",
    ),
    "wh_island": (
        "77824ca8c0008fb7a204e785ca2dcee1b2803f666bb545bd95cb8a51e04f1a4c",
        "1333d245574917b0787678fe2e517b0670c87eb6ad1e3d53a9ad7235a852f493",
    ),
    "wh_questions_object_gap": (
        "685c74eb8c199f30a24bba1bfabf9d9dff7962a64430e62b9b5f61d5369241ff",
        "d94a16957b34f37cb30e364aad8f6e4c34912e08038cc22bec52ade949659d8c",
    ),
    "wh_questions_subject_gap": (
        "3c33e4efc7182824211ff3288694cf010f4ce84f85c8df67410d784139c722b3",
        "a497f0885a24d26827ab08da5d5075d0cca91c482a7266e3bed6887092e004c2",
    ),
    "wh_questions_subject_gap_long_distance": (
        "985bae202dbc5566b9b5c51bd77dd9d1dbcd87e0f38e008c34a11d7aa07db788",
        "75d2e9173ab535f09ca4d0b4283a158823da0ed0e75e9219cc30b78207aec994",
    ),
    "wh_vs_that_no_gap": (
        "6a25d0d1499e9f522696a62ce9dba8c49f58c5446fddc6d852bf562d1016163c",
        "e6952dcd0a95d8d958fc785ca267eedf64faa30a370ca1354c23c2cc0422eaf6",
    ),
    "wh_vs_that_no_gap_long_distance": (
        "968faf59602a67f9cfd7c2e91a314a3f7342fd5daf41c21cadd25288fc85fdcf",
        "558247a5c35f62dae68997aa9374e94f0ff4c994c4d1b38a7a7c623471368a69",
    ),
    "wh_vs_that_with_gap": (
        "56f1ca988a8ca368234f12359792c414fdfec2891154e3f8ce6404da1d3f3212",
        "f3a7e1eb39713438e418868fabdce8071823470019bd70822c66e6f65cb90ed4",
    ),
    "wh_vs_that_with_gap_long_distance": (
        "3cb19100d6384264e512801e96c20e172a3c0c7778276b80ed60c65e97b86ab5",
        "dfe48327b27d617d883048c97af47e772e8732d7468ed04520813123dc9ec700",
    ),
}

#: the 67 paradigm names (file stems), sorted
BLIMP_PARADIGMS: tuple[str, ...] = tuple(sorted(BLIMP_DIGESTS))

BLIMP = DatasetSpec(
    name="blimp",
    subdir="blimp",
    files={f"data/{p}.jsonl": digests for p, digests in BLIMP_DIGESTS.items()},
    source="github.com/alexwarstadt/blimp (data/*.jsonl), commit 3e56b06f; CC BY 4.0",
    license="CC BY 4.0",
    description="BLiMP: 67 paradigms x 1000 English minimal pairs (linguistic evaluation of LMs)",
    compressed=True,
)


@dataclasses.dataclass(frozen=True)
class MinimalPair:
    """One BLiMP pair."""

    paradigm: str
    good: str
    bad: str
    field: str
    phenomenon: str


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def read_blimp(
    root: str | os.PathLike[str],
    paradigms: Iterable[str] | None = None,
    *,
    per_paradigm: int | None = None,
) -> list[MinimalPair]:
    """Minimal pairs from ``<root>/data/<paradigm>.jsonl`` (or ``.jsonl.gz``).

    Args:
        root: the BLiMP folder (``<data dir>/blimp``).
        paradigms: paradigm names (default: all 67 of :data:`BLIMP_PARADIGMS`).
        per_paradigm: keep only the first ``n`` pairs of each paradigm (smoke runs).

    Raises ``FileNotFoundError`` for a missing paradigm file and ``ValueError`` naming the file
    and line of a malformed record (missing key, empty sentence, ``UID`` not the file's paradigm).
    """
    root = Path(root)
    names = list(BLIMP_PARADIGMS) if paradigms is None else list(paradigms)
    unknown = [p for p in names if p not in BLIMP_DIGESTS]
    if unknown:
        raise ValueError(f"read_blimp: unknown paradigm(s) {unknown}; see BLIMP_PARADIGMS")
    pairs: list[MinimalPair] = []
    for p in names:
        path = root / "data" / f"{p}.jsonl"
        if not path.is_file():
            path = path.with_name(path.name + ".gz")
        if not path.is_file():
            raise FileNotFoundError(f"read_blimp: {root / 'data' / p}.jsonl(.gz) not found")
        n = 0
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                if per_paradigm is not None and n >= per_paradigm:
                    break
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from None
                for key in ("sentence_good", "sentence_bad", "UID"):
                    if not isinstance(rec.get(key), str) or not rec[key].strip():
                        raise ValueError(f"{path}:{lineno}: missing or empty key {key!r}")
                if rec["UID"] != p:
                    raise ValueError(f"{path}:{lineno}: UID {rec['UID']!r} is not the file's paradigm {p!r}")
                pairs.append(
                    MinimalPair(
                        p,
                        rec["sentence_good"].strip(),
                        rec["sentence_bad"].strip(),
                        str(rec.get("field", "")),
                        str(rec.get("linguistics_term", "")),
                    )
                )
                n += 1
        if n == 0:
            raise ValueError(f"{path}: no minimal pairs")
    return pairs
