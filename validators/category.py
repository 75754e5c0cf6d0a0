"""Category errors: a product record that calls the product another kind of thing.

    "The Nimbus 27 4K Monitor is a high-end gaming laptop"     a monitor called a laptop
    "The swimwear is heavy"  (in the record of running shoes)  the subject is another product
    "tagline": "The Ultimate Key-Picking App"  (a keyboard)    the tagline names another product

The check knows product types (PRODUCT_TYPES, grouped where one may stand for another: a jacket is a
coat, shoes are trainers). A type named as the subject of a sentence ("The X ..."), as what the product
"is a ..." or anywhere in the tagline is an error when neither it nor one of its group is a word of the
product's name or attributes. Foods and drinks are not types here: a mug's coffee is its contents.
Critical in the rubric (docs/review-rubric.md `category-error`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from validators.base import Evidence, Report, ValidationContext
from validators.prose_parts import parts_of
from validators.text import words

GROUPS = (
    "laptop notebook computer pc", "tablet ipad", "phone smartphone", "app application software",
    "monitor display screen", "television tv", "camera webcam", "printer", "speaker soundbar",
    "headphone headphones headset earbud earbuds earphone earphones", "keyboard piano synthesizer",
    "watch smartwatch band tracker", "clock", "lamp light", "fan", "heater radiator", "kettle",
    "teapot", "mixer blender", "toaster", "oven", "stove burner cooker", "vacuum", "drill", "hammer",
    "screwdriver", "saw", "knife", "weapon gun sword", "shoe shoes sneaker sneakers trainer trainers footwear",
    "boot boots", "sandal sandals", "sock socks", "shirt blouse", "jacket coat shell parka anorak raincoat",
    "sweater jumper pullover", "swimwear swimsuit", "dress", "trousers pants jeans", "glove gloves mitten mittens",
    "hat cap", "helmet", "scarf", "shroud", "towel", "blanket", "bed", "sofa couch settee", "chair seat",
    "table", "desk", "bookcase bookshelf shelf", "rack", "mat", "backpack rucksack pack bag daypack",
    "suitcase luggage", "tent shelter", "kayak canoe boat", "car vehicle suv truck", "bicycle bike", "scooter",
    "stroller pram pushchair buggy", "toy", "doll", "serum", "cream moisturiser moisturizer lotion",
    "supplement pill medicine", "perfume fragrance", "bottle flask", "mug cup tumbler", "plate", "bowl",
    "skillet pan frying", "pot", "hose", "sleepwear pyjamas pajamas", "board", "tape", "bank charger",
)
TYPE_GROUP = {w: frozenset(g.split()) for g in GROUPS for w in g.split()}
SUBJECT = re.compile(r"^(?:the|this|these|our|its)\s+((?:[\w-]+\s+){0,3}?)([a-z]+)\b(?=\s+(?:is|are|was|were|has|have|"
                     r"features|comes|offers|provides|can|will)\b)", re.IGNORECASE)
IS_A = re.compile(r"(?<!\byou )(?<!\bwe )(?<!\bthey )(?<!\bwho )\b(?:is|are) (?:an?|the) (?:[\w-]+ ){0,4}?([a-z]+)\b(?= (?:with|for|that|designed|made|from|by|in|"
                  r"of|to|which|and)\b|[.,;!]|$)", re.IGNORECASE)


def own_types(job: dict) -> set[str]:
    """The types the product may be called: the words of its name and attributes, with their groups."""
    text = " ".join([str(job.get("name", ""))] + [f"{k} {v}" for k, v in (job.get("attributes") or {}).items()])
    own = set(words(text)) | {w.rstrip("s") for w in words(text)}
    return own | {t for w in own for t in TYPE_GROUP.get(w, ())}


def foreign_type(noun: str, own: set[str]) -> bool:
    noun = noun.lower()
    return noun in TYPE_GROUP and not (TYPE_GROUP[noun] & own) and noun.rstrip("s") not in own


@dataclass(frozen=True)
class CategoryError:
    name: str = "category"

    def check(self, text: str, context: ValidationContext) -> Report:
        own = own_types(context.input)
        found: list[Evidence] = []
        for part in parts_of(text, "product"):
            for s in part.sentences:
                nouns = [m.group(2) for m in SUBJECT.finditer(s.text)] + [m.group(1) for m in IS_A.finditer(s.text)]
                if part.name == "tagline":
                    nouns += words(s.text)
                wrong = next((n for n in nouns if foreign_type(n, own)), None)
                if wrong:
                    found.append(Evidence(s.start, s.end, s.text, f"calls the product a {wrong.lower()}"))
        if found:
            return Report(self.name, False, 0.0, f"the record calls the product something else: {found[0].note} "
                          f"({found[0].text[:80]!r})", tuple(found))
        return Report(self.name, True, 1.0, "the record describes the product it was asked for")
