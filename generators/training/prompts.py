"""Chat prompts of hybridgen's three content kinds, generated deterministically, for self-distillation.

The refiner learns to predict what the AR model itself would write for prompts like the pipeline
sends it: article sections, product descriptions, Python function bodies. Prompts are built from
small vocabularies with a seeded RNG, so `train` and `heldout` splits never overlap (different
seeds, and for code different MBPP task ranges: MBPP's own train/validation tasks 511-974 here,
while the benchmarks use its test tasks 11-510).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

TOPICS = [
    "tea", "coffee roasting", "urban gardening", "composting", "bicycle commuting", "home espresso",
    "solar panels", "rainwater harvesting", "birdwatching", "sourdough baking", "houseplants", "running shoes",
    "remote work", "time management", "learning a language", "public libraries", "board games", "camping",
    "electric cars", "recycling plastics", "sleep hygiene", "meal planning", "budgeting", "saving energy at home",
    "caring for a dog", "adopting a cat", "beekeeping", "knitting", "photography for beginners", "hiking safety",
    "museum visits", "train travel in Europe", "indoor climbing", "chess openings", "jazz history",
    "the history of maps", "volcanoes", "ocean tides", "the water cycle", "honeybees", "wind power",
    "first aid basics", "writing a CV", "job interviews", "open source software", "password security",
    "backing up files", "spreadsheets", "email etiquette", "public speaking", "journaling", "meditation",
    "yoga for beginners", "strength training", "stretching", "healthy breakfasts", "fermented foods",
    "growing tomatoes", "pruning roses", "lawn care", "wildflower meadows", "city parks", "street food",
    "olive oil", "cheese making", "chocolate", "spices", "rice varieties", "bread flour", "kitchen knives",
    "cast iron pans", "washing wool", "repairing clothes", "second-hand furniture", "painting a room",
    "insulating a loft", "fixing a bike puncture", "choosing a laptop", "mechanical keyboards", "e-readers",
    "podcasts", "film photography", "vinyl records", "learning guitar", "choir singing", "community radio",
]
AUDIENCES = [
    "beginners", "students", "busy parents", "retirees", "office workers", "small business owners",
    "teenagers", "travellers", "gardeners", "home cooks", "teachers", "engineers", "general readers",
]
HEADING_PATTERNS = [
    "Why {t} matters", "Getting started with {t}", "Common mistakes", "A short history", "Tools you need",
    "Tips from experts", "Costs and savings", "Safety first", "Step by step", "Looking ahead",
    "Choosing well", "Everyday habits", "Myths and facts", "Where to learn more",
]
POINT_WORDS = [
    "cost", "time", "quality", "safety", "comfort", "health", "simplicity", "habits", "tools", "patience",
    "community", "seasons", "storage", "maintenance", "planning", "budget", "practice", "variety",
]
PRODUCT_ADJ = ["Aurora", "Lumo", "Trailhead", "Nimbus", "Cedar", "Vega", "Orbit", "Harbor", "Summit", "Pico",
               "Atlas", "Breeze", "Ember", "Fjord", "Mesa", "Nova", "Quill", "Tundra"]
PRODUCT_NOUN = {
    "travel mug": {"material": ["stainless steel", "ceramic", "bamboo fibre"], "capacity": ["350 ml", "450 ml", "500 ml"],
                   "keeps drinks hot": ["4 hours", "6 hours", "8 hours"], "colour": ["blue", "black", "sage green"]},
    "desk lamp": {"power": ["6 W LED", "8 W LED", "10 W LED"], "brightness levels": [3, 5, 7],
                  "charging port": ["USB-C", "micro-USB"], "weight": ["0.8 kg", "1.2 kg"]},
    "backpack": {"volume": ["20 litres", "30 litres", "40 litres"], "fabric": ["recycled nylon", "canvas", "polyester"],
                 "laptop sleeve": ["up to 13 inches", "up to 15 inches"], "rain cover": [True, False]},
    "kettle": {"capacity": ["1.2 litres", "1.7 litres"], "power": ["2000 W", "2200 W"],
               "material": ["glass", "stainless steel"], "auto shut-off": [True]},
    "running shoe": {"weight": ["240 g", "280 g"], "drop": ["6 mm", "8 mm", "10 mm"],
                     "upper": ["knit mesh", "engineered mesh"], "sizes": ["36-47", "38-46"]},
    "office chair": {"adjustable height": [True], "max load": ["120 kg", "150 kg"],
                     "seat material": ["mesh", "fabric", "leather"], "warranty": ["2 years", "5 years"]},
    "water bottle": {"capacity": ["600 ml", "750 ml", "1 litre"], "material": ["tritan", "stainless steel"],
                     "dishwasher safe": [True, False], "colour": ["red", "grey", "teal"]},
    "bluetooth speaker": {"battery life": ["10 hours", "15 hours", "24 hours"], "waterproof": ["IPX5", "IPX7"],
                          "weight": ["350 g", "540 g"], "output": ["10 W", "20 W"]},
}


@dataclass(frozen=True)
class ChatPrompt:
    kind: str
    user: str
    system: str | None = None


def article_section_prompt(rng: random.Random) -> ChatPrompt:
    topic = rng.choice(TOPICS)
    heading = rng.choice(HEADING_PATTERNS).format(t=topic)
    points = ", ".join(rng.sample(POINT_WORDS, k=rng.randint(2, 3)))
    audience = rng.choice(AUDIENCES)
    return ChatPrompt("article", f"Write the section \"{heading}\" of an article about {topic} for {audience}. "
                                 f"Cover: {points}. Write one paragraph.")


def product_prompt(rng: random.Random) -> ChatPrompt:
    noun = rng.choice(sorted(PRODUCT_NOUN))
    name = f"{rng.choice(PRODUCT_ADJ)} {noun.title()}"
    attrs = {k: rng.choice(v) for k, v in PRODUCT_NOUN[noun].items()}
    facts = "; ".join(f"{k}: {v}" for k, v in attrs.items())
    return ChatPrompt("product", f"Write a product description for the {name}. Facts: {facts}. "
                                 "Use only these facts. Write one paragraph.")


def code_prompt(task: dict) -> ChatPrompt:
    tests = "\n".join(task.get("test_list", [])[:2])
    return ChatPrompt("code", f"Write a Python function for this task. Reply with only the code.\n{task['text']}\n"
                              f"It must pass these tests:\n{tests}")


def load_mbpp(path: Path, task_range: tuple[int, int]) -> list[dict]:
    lo, hi = task_range
    with open(path, encoding="utf-8") as fh:
        return [t for t in map(json.loads, fh) if lo <= t["task_id"] <= hi]


TRAIN_CODE_TASKS = (511, 974)  # MBPP validation + train splits
HELDOUT_CODE_TASKS = (601, 640)  # a slice kept out of the training prompts below
BENCH_CODE_TASKS = (11, 510)  # MBPP test split: benchmarks only


def build_prompts(n: int, *, split: str, mbpp_path: Path | None, seed: int = 0) -> list[ChatPrompt]:
    """n prompts, one third of each kind (code only if MBPP is available), deterministic per split."""
    rng = random.Random(f"{split}-{seed}")
    tasks: list[dict] = []
    if mbpp_path is not None and mbpp_path.exists():
        if split == "train":
            tasks = [t for t in load_mbpp(mbpp_path, TRAIN_CODE_TASKS)
                     if not HELDOUT_CODE_TASKS[0] <= t["task_id"] <= HELDOUT_CODE_TASKS[1]]
        else:
            tasks = load_mbpp(mbpp_path, HELDOUT_CODE_TASKS)
        rng.shuffle(tasks)
    prompts: list[ChatPrompt] = []
    seen: set[str] = set()
    kinds = ["article", "product", "code"] if tasks else ["article", "product"]
    attempts = code_used = 0
    while len(prompts) < n and attempts < n * 50:
        attempts += 1
        kind = kinds[attempts % len(kinds)]
        if kind == "code":
            if code_used >= len(tasks):
                continue  # every task used once: no duplicate replies, the rest are other kinds
            p = code_prompt(tasks[code_used])
            code_used += 1
        elif kind == "article":
            p = article_section_prompt(rng)
        else:
            p = product_prompt(rng)
        if p.user in seen and kind != "code":
            continue
        seen.add(p.user)
        prompts.append(p)
    return prompts
