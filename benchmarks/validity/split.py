"""The dev/heldout split of the validity corpus: rule, and a check (stdlib only).

Every media item carries a ``group``: one key per person (``p-...``) or, for photos of
several people and for material whose people may recur, per source (``src-...``/file).
All media of a group land on the same side.  The rule for the first split (``media`` = the
stage-1 media, i.e. those without ``stage: 2``), reproducible from ``corpus.yaml``:

    groups = sorted(set(m["group"] for m in media))
    for seed in 0, 1, 2, ...:
        rng = random.Random(seed)
        side = {g: "dev" if rng.random() < DEV_P else "heldout" for g in groups}
        if acceptable(side): break

``acceptable`` asks for: each of the seven expressions (neutral, happiness, sadness,
anger, fear, surprise, disgust) on both sides (image faces or video segments, any
certainty), at least 3 multi-person photos and 2 videos and 1 hand-landmarked image per
side, neutral and happy video segments on both sides, at least 2 angry, 2 surprised and
2 disgusted image faces per side, a heldout share of the neutral and of the happy image faces between 30% and 50%,
and a dev share of all labelled image faces between 55% and 68%.

Second stage (media added after the first split was frozen; ``stage: 2`` on the media
entry).  They never change the first split: ``choose`` runs over the stage-1 media only
and must still give the recorded seed and sides.  A stage-2 media item whose group
(person) already exists in stage 1 joins that group's side.  The *new* groups are split by
their own seeded draw:

    new = sorted(groups of stage-2 media that stage 1 does not have)
    for seed in 0, 1, 2, ...:
        rng = random.Random(STAGE2_SALT + seed)
        side = {g: "dev" if rng.random() < DEV_P else "heldout" for g in new}
        if acceptable_stage2(side): break

``acceptable_stage2`` asks that each expression shown by at least two new groups (image
faces or video segments, any certainty) is shown by new groups on both sides, that both
sides get at least one new group, and that 45-75% of the new groups go to dev.

Third stage (``stage: 3``): media gathered after every rule, constant and held-out run of
stages 1-2, to give one clean estimate.  Each new group goes to a third side, ``fresh``,
that is measured with the shipped rules and never tuned on.  Stage-3 groups must be new
people or sources (media of a person already in stages 1-2 were left out).

    python benchmarks/validity/split.py          # recompute and compare with corpus.yaml
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch import MANIFEST, load_manifest  # noqa: E402

DEV_P = 0.6
EXPRESSIONS = ("neutral", "happiness", "sadness", "anger", "fear", "surprise", "disgust")
MAX_SEED = 100_000


def _stats(media, side):
    st = {
        s: {
            "expr": set(),
            "group_photos": 0,
            "videos": 0,
            "landmarks": 0,
            "faces": 0,
            "by_expr": {},
            "video_expr": set(),
        }
        for s in ("dev", "heldout")
    }
    for m in media:
        s = st[side[m["group"]]]
        for f in m.get("faces") or []:
            s["faces"] += 1
            if f.get("expression"):
                s["expr"].add(f["expression"])
                s["by_expr"][f["expression"]] = s["by_expr"].get(f["expression"], 0) + 1
        for seg in m.get("segments") or []:
            s["expr"].add(seg["expression"])
            s["video_expr"].add(seg["expression"])
        s["group_photos"] += m.get("category") == "group"
        s["videos"] += m["kind"] == "video"
        s["landmarks"] += any(lm.get("hand_annotated") for lm in m.get("landmarks") or [])
    return st


def acceptable(media, side) -> bool:
    st = _stats(media, side)
    for s in st.values():
        if not set(EXPRESSIONS) <= s["expr"]:
            return False
        if s["group_photos"] < 3 or s["videos"] < 2 or s["landmarks"] < 1:
            return False
        if not {"neutral", "happiness"} <= s["video_expr"]:
            return False
    for expr in ("anger", "surprise", "disgust"):
        if min(st[s]["by_expr"].get(expr, 0) for s in ("dev", "heldout")) < 2:
            return False
    for expr in ("neutral", "happiness"):
        n_dev, n_held = (st[s]["by_expr"].get(expr, 0) for s in ("dev", "heldout"))
        if not 0.3 <= n_held / max(1, n_dev + n_held) <= 0.5:
            return False
    total = st["dev"]["faces"] + st["heldout"]["faces"]
    return total > 0 and 0.55 <= st["dev"]["faces"] / total <= 0.68


def choose(media, dev_p: float = DEV_P):
    """Return ``(seed, {group: "dev"|"heldout"})`` by the rule in the module docstring."""
    groups = sorted({m["group"] for m in media})
    for seed in range(MAX_SEED):
        rng = random.Random(seed)
        side = {g: "dev" if rng.random() < dev_p else "heldout" for g in groups}
        if acceptable(media, side):
            return seed, side
    raise RuntimeError("no acceptable split found")


def stage_of(m) -> int:
    """1 for the media of the frozen first split, 2 for media added later."""
    return int(m.get("stage", 1))


STAGE2_SALT = 20_261_130  # keeps the stage-2 draws independent of the stage-1 seeds


def _expressions_by_group(media) -> dict[str, set]:
    out: dict[str, set] = {}
    for m in media:
        exprs = out.setdefault(m["group"], set())
        for f in m.get("faces") or []:
            if f.get("expression") and not f.get("ignore"):
                exprs.add(f["expression"])
        for seg in m.get("segments") or []:
            if seg.get("expression"):
                exprs.add(seg["expression"])
    return out


def acceptable_stage2(new_media, side) -> bool:
    if set(side.values()) != {"dev", "heldout"}:
        return False
    if not 0.45 <= sum(v == "dev" for v in side.values()) / len(side) <= 0.75:
        return False
    by_group = _expressions_by_group(new_media)
    for expr in set().union(*by_group.values()):
        sides = {side[g] for g, ex in by_group.items() if expr in ex}
        shown = sum(expr in ex for ex in by_group.values())
        if shown >= 2 and sides != {"dev", "heldout"}:
            return False
    return True


def choose_stage2(media, stage1_side, dev_p: float = DEV_P):
    """Return ``(seed, {group: side})`` for the groups of stage-2 media (rule in the docstring).

    Groups that already exist in stage 1 keep ``stage1_side``; ``seed`` is None when there
    are no new groups.
    """
    stage2 = [m for m in media if stage_of(m) == 2]
    side = {m["group"]: stage1_side[m["group"]] for m in stage2 if m["group"] in stage1_side}
    new = sorted({m["group"] for m in stage2} - set(stage1_side))
    if not new:
        return None, side
    new_media = [m for m in stage2 if m["group"] in new]
    for seed in range(MAX_SEED):
        rng = random.Random(STAGE2_SALT + seed)
        draw = {g: "dev" if rng.random() < dev_p else "heldout" for g in new}
        if acceptable_stage2(new_media, draw):
            return seed, {**side, **draw}
    raise RuntimeError("no acceptable stage-2 split found")


def split_stage3(media, earlier_side):
    """``{group: "fresh"}`` for stage-3 media. Their groups must be new: the fresh part holds
    only people nobody has tuned on (a ValueError names any that is not)."""
    old = sorted({m["group"] for m in media if stage_of(m) == 3} & set(earlier_side))
    if old:
        raise ValueError(f"stage-3 media of groups already in stages 1-2: {', '.join(old)}")
    return {m["group"]: "fresh" for m in media if stage_of(m) == 3}


def split_all(media):
    """``(seed1, seed2, {group: side})`` for the whole corpus, all stages."""
    stage1 = [m for m in media if stage_of(m) == 1]
    seed1, side1 = choose(stage1)
    seed2, side2 = choose_stage2(media, side1)
    side = {**side1, **side2}
    return seed1, seed2, {**side, **split_stage3(media, side)}


def main() -> int:
    data = load_manifest(MANIFEST)
    media = data["media"]
    seed, seed2, side = split_all(media)
    bad = [m["id"] for m in media if m["split"] != side[m["group"]]]
    recorded = data.get("split", {}).get("seed")
    recorded2 = (data.get("split", {}).get("stage2") or {}).get("seed")
    if bad or recorded != seed or recorded2 != seed2:
        print(
            f"split differs from the rule (rule seeds {seed}/{seed2}, recorded "
            f"{recorded}/{recorded2}): {', '.join(bad[:10])}"
        )
        return 1
    n1 = {m["group"] for m in media if stage_of(m) == 1}
    n2 = {m["group"] for m in media if stage_of(m) == 2} - n1
    n3 = {m["group"] for m in media if stage_of(m) == 3} - n1 - n2
    print(
        f"split matches the rule: stage 1 seed {seed}, "
        f"{sum(side[g] == 'dev' for g in n1)} dev groups, "
        f"{sum(side[g] == 'heldout' for g in n1)} heldout groups; stage 2 seed {seed2}, "
        f"{sum(side[g] == 'dev' for g in n2)} new dev groups, "
        f"{sum(side[g] == 'heldout' for g in n2)} new heldout groups; stage 3 "
        f"{sum(side[g] == 'fresh' for g in n3)} fresh groups"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
