"""Synthetic NLI pairs for the product-attribute check: an attribute statement vs a description sentence.

Why: SNLI and MNLI premises describe one scene, so their annotators call two unrelated statements
about the same subject a contradiction ("a man sleeps" vs "a man runs"). Trained only on them, the
head fired at p 0.86-0.95 on pairs like "The Lumo Desk Lamp's weight is 1.2 kg." vs "It is designed
to be sustainable.", which flagged most products. These pairs teach the convention the
`product_attributes` validator needs: a sentence about another attribute, or a general claim, is
neutral; restating the value is entailment; another value of the same attribute is contradiction.

Premises use `attribute_statement`, the exact wording the validator builds at run time.
Products, sentence templates and general claims are split in two (`train` / `heldout`), so the
held-out pairs measure the convention on products and phrasings training never saw (the value
pools, e.g. colour names, are shared).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from validators.contradiction.validator import attribute_statement

PRODUCTS = [
    "Nimbus Water Bottle", "Harbor Canvas Tote", "Summit Trekking Pole", "Ember Pour-Over Kettle",
    "Atlas Laptop Stand", "Willow Plant Pot", "Orbit Wireless Speaker", "Cascade Shower Head",
    "Pioneer Camping Stove", "Meridian Wall Clock", "Solstice Sunglasses", "Drift Yoga Mat",
    "Beacon Bike Light", "Haven Throw Blanket", "Quill Notebook", "Vertex Office Chair",
    "Tidal Swim Goggles", "Cedar Cutting Board", "Pulse Fitness Tracker", "Glacier Cooler Box",
    "Lantern Reading Light", "Monarch Umbrella", "Basil Herb Planter", "Comet Electric Toothbrush",
    "Falcon Drone", "Ridge Hiking Boots", "Maple Desk Organizer", "Aria Headphones",
    "Sprout Lunch Box", "Titan Tool Kit", "Echo Smart Plug", "Breeze Desk Fan",
    "Harvest Salad Bowl", "Nomad Duffel Bag", "Zenith Standing Desk", "Pebble Power Bank",
    "Coral Beach Towel", "Vista Binoculars", "Fable Kids Tablet", "Granite Mortar and Pestle",
]

# Each attribute: values, then sentences that restate a value (entail) and template sentences about
# the attribute in general. A template filled with another value of the same attribute contradicts.
COLOURS = ["red", "blue", "green", "black", "white", "grey", "yellow", "orange", "purple", "pink", "navy",
           "silver", "teal", "beige", "midnight blue", "forest green", "charcoal", "coral red"]
MATERIALS = ["stainless steel", "bamboo", "ceramic", "glass", "leather", "cotton", "recycled plastic", "oak",
             "aluminium", "recycled nylon", "wool", "silicone", "cast iron", "linen", "walnut", "polyester"]
PORTS = ["USB-C", "micro-USB", "Lightning", "a barrel plug", "a magnetic dock", "a wireless charging pad"]


@dataclass(frozen=True)
class AttributeKind:
    key: str
    values: Callable[[random.Random], Any]          # a random value
    other: Callable[[random.Random, Any], Any]      # a different value of the same attribute
    says: tuple[str, ...]                           # "{v}" = the value, "{p}" = the product; half train, half held out


def _pick(pool: list) -> Callable[[random.Random], Any]:
    return lambda rng: rng.choice(pool)


def _other(pool: list) -> Callable[[random.Random, Any], Any]:
    return lambda rng, v: rng.choice([x for x in pool if x != v])


def _amount(unit: str, lo: int, hi: int, step: int = 1) -> tuple[Callable, Callable]:
    def value(rng: random.Random) -> str:
        return f"{rng.randrange(lo, hi, step)} {unit}"

    def other(rng: random.Random, v: str) -> str:
        n = int(v.split()[0])
        return f"{rng.choice([x for x in range(lo, hi, step) if abs(x - n) >= step])} {unit}"

    return value, other


def _count(lo: int, hi: int) -> tuple[Callable, Callable]:
    return (lambda rng: rng.randrange(lo, hi),
            lambda rng, v: rng.choice([x for x in range(lo, hi) if x != v]))


KINDS = [
    AttributeKind("colour", _pick(COLOURS), _other(COLOURS), (
        "It comes in {v}.", "The {p} is finished in {v}.", "Its {v} colour suits any room.",
        "This {v} {p} stands out on a shelf.", "The {p} is available in {v}.", "Choose it in classic {v}.")),
    AttributeKind("material", _pick(MATERIALS), _other(MATERIALS), (
        "It is made of {v}.", "The {p} is crafted from {v}.", "Its body is built from durable {v}.",
        "Made from {v}, the {p} is built to last.", "The {p} uses {v} throughout.", "It is a {v} design.")),
    AttributeKind("weight", *_amount("g", 100, 2000, 50), (
        "It weighs {v}.", "The {p} weighs just {v}.", "At {v}, it is easy to carry.",
        "Weighing {v}, the {p} fits in any bag.", "The whole {p} comes in at {v}.", "It tips the scales at {v}.")),
    AttributeKind("capacity", *_amount("ml", 200, 1500, 50), (
        "It holds {v}.", "The {p} has a capacity of {v}.", "With room for {v}, it lasts all day.",
        "The {p} can hold up to {v}.", "It fits {v} of liquid.", "Its {v} capacity is enough for a day out.")),
    AttributeKind("battery life", *_amount("hours", 4, 60), (
        "The battery lasts {v}.", "It runs for {v} on a single charge.", "Expect {v} of use per charge.",
        "One charge gives the {p} {v} of power.", "The {p} keeps going for {v}.", "It offers {v} of battery life.")),
    AttributeKind("warranty", *_amount("years", 1, 11), (
        "It comes with a {v} warranty.", "The {p} is covered for {v}.", "A {v} warranty is included.",
        "Every {p} carries a {v} guarantee.", "The warranty runs for {v}.", "You get {v} of warranty cover.")),
    AttributeKind("charging port", _pick(PORTS), _other(PORTS), (
        "It charges via {v}.", "The {p} charges through {v}.", "Charging uses {v}.",
        "Top it up with {v}.", "The {p} is powered through {v}.", "It recharges over {v}.")),
    AttributeKind("speed settings", *_count(2, 10), (
        "It has {v} speed settings.", "The {p} offers {v} speed settings.", "Pick from {v} speed settings.",
        "With {v} speed settings, the {p} suits every task.", "There are {v} speed settings to choose from.",
        "The {p} comes with {v} speed settings.")),
]

# Yes/no attributes: the statement is "The P is K." or "The P is not K."; a sentence saying the
# opposite contradicts, one saying the same entails.
FLAGS = {
    "dishwasher safe": (("It is dishwasher safe.", "It can go in the dishwasher.", "Clean it in the dishwasher."),
                        ("It is not dishwasher safe.", "Wash it by hand only.", "Keep it out of the dishwasher.")),
    "waterproof": (("It is waterproof.", "Rain will not get inside it.", "It keeps water out."),
                   ("It is not waterproof.", "Keep it away from rain.", "It lets water in.")),
    "rechargeable": (("It is rechargeable.", "Just recharge it when the battery runs low.", "It has a rechargeable battery."),
                     ("It is not rechargeable.", "It runs on disposable batteries.", "The battery cannot be recharged.")),
    "foldable": (("It is foldable.", "It folds flat for storage.", "Fold it away after use."),
                 ("It is not foldable.", "It does not fold.", "Its rigid frame cannot be folded.")),
    "machine washable": (("It is machine washable.", "Toss it in the washing machine.", "It can be machine washed."),
                         ("It is not machine washable.", "Hand wash only.", "Keep it out of the washing machine.")),
    # things the product comes with (the statement says "comes with", not "is")
    "rain cover": (("A rain cover is included.", "It ships with a rain cover.", "The rain cover keeps your gear dry."),
                   ("No rain cover is included.", "The rain cover is sold separately.", "It does not include a rain cover.")),
    "carry case": (("A carry case is included.", "It comes in its own carry case.", "Store it in the included case."),
                   ("No carry case is included.", "The carry case is sold separately.", "It does not come with a case.")),
    "remote control": (("A remote control is included.", "Adjust it from the included remote.", "It ships with a remote."),
                       ("No remote control is included.", "There is no remote; use the buttons.", "It has no remote.")),
}

# Clauses the default model strings onto its long sentences; appended to compound sentences.
TAILS = [
    "making it a perfect choice for everyday use", "which is ideal for busy mornings",
    "offering a balance between comfort and style", "so it is ready whenever you are",
    "ensuring a perfect blend of quality and value", "which makes it a great gift",
    "designed to conserve energy", "providing a warm and inviting feel",
]

GENERAL = [
    "It is designed to be sustainable.", "Perfect for daily commutes and weekend trips.",
    "A thoughtful gift for friends and family.", "Its sleek design fits any home.",
    "Enjoy it wherever you go.", "The {p} is built for everyday use.", "It makes a great first impression.",
    "Customers love its simple design.", "It is easy to set up in minutes.", "A smart choice for busy people.",
    "The {p} brings comfort to every day.", "Every detail has been carefully considered.",
    "It pairs well with the rest of the range.", "Designed in a small studio by a passionate team.",
    "It is a reliable companion for any adventure.", "The {p} combines style and function.",
    "Its minimalist look suits modern spaces.", "It is the perfect addition to your collection.",
    "Built to make everyday tasks easier.", "The {p} is loved by outdoor enthusiasts.",
    # longer claims, as the default model writes them
    "The {p} is designed to be a sustainable and eco-friendly option, with a focus on quality and durability.",
    "Whether you are at home or on the go, the {p} is a versatile and practical choice for everyday life.",
    "With its sleek and modern design, the {p} is perfect for anyone who values both style and comfort.",
    "The {p} is made with care by a team that believes great products should last for years to come.",
]

LABELS = ("entailment", "neutral", "contradiction")


def _halves(items: list | tuple, part: str) -> list:
    """Alternate items to train / heldout, so both halves span the list."""
    return [x for i, x in enumerate(items) if (i % 2 == 0) == (part == "train")]


def product_pairs(part: str, seed: int = 0, per_product: int = 6) -> list[dict]:
    """Labelled (premise, hypothesis) pairs for the `train` or `heldout` part.

    Per product: `per_product` attributes and two yes/no flags, each with one entailing, one
    contradicting and four neutral sentences (another attribute of the same product, in prose and as
    "Key: value", a general claim, the bare product name), and three long sentences naming several attributes: without this one (neutral),
    with its value among others (neutral), with another value among others (contradiction).
    """
    if part not in ("train", "heldout"):
        raise ValueError(f"part must be 'train' or 'heldout', not {part!r}")
    rng = random.Random(f"{seed}-{part}")
    general = _halves(GENERAL, part)
    out: list[dict] = []
    for product in _halves(PRODUCTS, part):
        kinds = rng.sample(KINDS, k=min(per_product, len(KINDS)))
        flags = rng.sample(sorted(FLAGS), k=2)
        values = {k.key: k.values(rng) for k in kinds} | {f: rng.random() < 0.5 for f in flags}

        def key_value(key: str, value: Any) -> str:
            shown = ("yes" if value else "no") if isinstance(value, bool) else value
            return f"{key[0].upper()}{key[1:]}: {shown}"

        def sentence(key: str, value: Any) -> str:
            if rng.random() < 0.25:  # a record's bullet facts are often written "Key: value"
                return key_value(key, value)
            if key in values and isinstance(values[key], bool):
                return rng.choice(_halves(FLAGS[key][0 if value else 1], part))
            kind = next(k for k in kinds if k.key == key)
            return rng.choice(_halves(kind.says, part)).format(v=value, p=product)

        def compound(mentions: list[tuple[str, Any]]) -> str:
            """One long sentence naming several attributes, as the default model writes them ("Its
            power: 8 W LED, which ..., and colour temperature: 2700-6500 K, which ...")."""
            clauses = []
            for i, (key, value) in enumerate(mentions):
                if rng.random() < 0.3 and not isinstance(value, bool):
                    clause = f"{'Its' if i == 0 else 'its'} {key}: {value}"
                else:
                    clause = sentence(key, value).rstrip(".")
                    clause = clause if i == 0 else clause[:1].lower() + clause[1:]
                clauses.append(clause)
            text = ", and ".join([", ".join(clauses[:-1]), clauses[-1]] if len(clauses) > 2 else clauses)
            if rng.random() < 0.5:
                text += ", " + rng.choice(_halves(TAILS, part))
            return text + "."

        keys = list(values)
        for key, value in values.items():
            premise = attribute_statement(product, key, value)
            wrong = (not value) if isinstance(value, bool) else next(k for k in kinds if k.key == key).other(rng, value)
            others = [k for k in keys if k != key]
            other_key = rng.choice(others)
            some_others = [(k, values[k]) for k in rng.sample(others, k=rng.choice((1, 2)))]
            for hypothesis, label in (
                (sentence(key, value), "entailment"),
                (sentence(key, wrong), "contradiction"),
                (sentence(other_key, values[other_key]), "neutral"),
                (rng.choice(general).format(p=product), "neutral"),
                # the record's bullet facts: another attribute's "Key: value" is neutral, and so is a
                # tagline that only names the product
                (key_value(other_key, values[other_key]), "neutral"),
                (rng.choice((product, f"The {product}", f"{product}: {rng.choice(general).format(p=product)}")),
                 "neutral"),
                # long sentences: other attributes only -> neutral; this one right among others ->
                # neutral (the hypothesis says more than the premise); this one wrong -> contradiction
                (compound([(k, values[k]) for k in rng.sample(others, k=rng.choice((2, 3)))]), "neutral"),
                (compound(rng.sample(some_others + [(key, value)], k=len(some_others) + 1)), "neutral"),
                (compound(rng.sample(some_others + [(key, wrong)], k=len(some_others) + 1)), "contradiction"),
            ):
                out.append({"premise": premise, "hypothesis": hypothesis, "label": label, "source": "product"})
    rng.shuffle(out)
    return out
