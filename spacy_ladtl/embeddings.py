"""Thinc architecture: spaCy's word + character embedding with its hashed PREFIX, SUFFIX and SHAPE features."""
from typing import List, Sequence, Union

from spacy.ml.models.tok2vec import CharacterEmbed, MultiHashEmbed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Maxout, Model, chain, concatenate, with_array
from thinc.types import Floats2d


@registry.architectures("spacy-ladtl.CharacterAffixEmbed.v1")
def build_character_affix_embed(
    width: int,
    rows: int,
    nM: int,
    nC: int,
    include_static_vectors: bool = False,
    feature: Union[int, str] = "LOWER",
    affix_attrs: Sequence[str] = ("PREFIX", "SUFFIX", "SHAPE"),
    affix_rows: Sequence[int] = (1000, 2500, 2500),
) -> Model[List[Doc], List[Floats2d]]:
    """``spacy.CharacterEmbed.v2`` plus the hashed attributes of spaCy's own ``ner`` tok2vec.

    width, rows, nM, nC, include_static_vectors, feature: as in spacy.CharacterEmbed.v2
        (the same keys, so a config switches by changing only ``@architectures``).
    affix_attrs: extra token attributes embedded by spacy.MultiHashEmbed.v2.
    affix_rows: hash rows per attribute, in the order of ``affix_attrs``.
    Both parts give ``width`` per token; a Maxout layer mixes them back to ``width``.
    """
    if not affix_attrs:
        raise ValueError(
            "affix_attrs in [components.ladtl_ner.model.tok2vec.embed] is empty: name at least one "
            "attribute (e.g. [\"PREFIX\", \"SUFFIX\", \"SHAPE\"]) or use spacy.CharacterEmbed.v2."
        )
    if len(affix_attrs) != len(affix_rows):
        raise ValueError(
            f"[components.ladtl_ner.model.tok2vec.embed] has {len(affix_attrs)} affix_attrs "
            f"{list(affix_attrs)} but {len(affix_rows)} affix_rows {list(affix_rows)}: give one row count per attribute."
        )
    words_and_chars = CharacterEmbed(width, rows, nM, nC, include_static_vectors, feature)
    affixes = MultiHashEmbed(width, list(affix_attrs), list(affix_rows), include_static_vectors=False)
    # dropout=None: no Dropout layer here. Each part ends in a Maxout whose Dropout spaCy sets to
    # [training] dropout, as in CharacterEmbed.v2 alone; one more here would stack a third.
    mix = with_array(Maxout(width, 2 * width, nP=3, normalize=True, dropout=None))
    return chain(concatenate(words_and_chars, affixes), mix)
