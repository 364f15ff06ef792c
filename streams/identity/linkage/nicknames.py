"""Nicknames: `bill` and `william` are the same given name written two ways.

Each group lists the formal name first; a name maps to the formal names of every group it is in
(`chris` is both Christopher and Christine), so two given names are nickname-equivalent when
their formal names meet.
"""

from __future__ import annotations

from functools import cache

_GROUPS = (
    "alexander alex alec sandy xander",
    "alexandra alex alexa sandra sasha lexi",
    "andrew andy drew",
    "anthony tony ant",
    "benjamin ben benny benji",
    "catherine cathy kate katie kath cath kitty",
    "katherine kathy kate katie kath kat kitty",
    "charles charlie chas chuck",
    "charlotte charlie lottie lotte",
    "christopher chris kit topher",
    "christine chris chrissie tina",
    "daniel dan danny",
    "david dave davey",
    "deborah debbie debs deb",
    "edward ed eddie ted ned",
    "elizabeth liz lizzie beth betty eliza libby bess",
    "eleanor ellie nell nora",
    "frederick fred freddie",
    "gregory greg",
    "harriet hattie",
    "henry harry hal hank",
    "isabella bella izzy isabel",
    "jacqueline jackie jacqui",
    "james jim jimmy jamie",
    "jennifer jen jenny",
    "jessica jess jessie",
    "john jack johnny jon",
    "jonathan jon jonny",
    "joseph joe joey",
    "joshua josh",
    "kenneth ken kenny",
    "lawrence larry laurie",
    "leonard leo len lenny",
    "margaret maggie meg peggy marge madge",
    "matthew matt matty",
    "michael mike mick mickey mikey",
    "nicholas nick nicky",
    "nicola nicky nikki",
    "patricia pat patty trish",
    "patrick pat paddy",
    "peter pete",
    "rebecca becky becca",
    "richard rich rick dick ricky",
    "robert rob bob bobby robbie bert",
    "samantha sam sammy",
    "samuel sam sammy",
    "stephen steve stevie",
    "steven steve stevie",
    "susan sue susie",
    "theodore theo ted teddy",
    "thomas tom tommy",
    "timothy tim timmy",
    "victoria vicky tori",
    "william will bill billy liam willie",
    "zachary zach zack",
)


def _formal_names_by_name() -> dict[str, frozenset[str]]:
    formal: dict[str, set[str]] = {}
    for group in _GROUPS:
        names = group.split()
        for name in names:
            formal.setdefault(name, set()).add(names[0])
    return {name: frozenset(found) for name, found in formal.items()}


_FORMAL = _formal_names_by_name()


@cache
def formal_names(given_name: str) -> frozenset[str]:
    """The formal names a (normalised) given name may stand for; itself if none is known."""
    return _FORMAL.get(given_name, frozenset((given_name,)))


def same_given_name(first: str, second: str) -> bool:
    """Whether two given names are one name, allowing for nicknames (`bill` / `william`)."""
    return not formal_names(first).isdisjoint(formal_names(second))
