"""Gate decisions: plain functions of numbers, so the evaluation stores the same decision the check shows
and the export re-reads it before publishing, however the export was launched."""

from __future__ import annotations

from typing import Any


def fid_gate(
    score: dict[str, Any], champion: dict[str, Any] | None, fid_max: float, tolerance: float
) -> dict[str, Any]:
    """Pass when FID is under ``fid_max`` and not a real regression against the champion.

    A regression is real when the mean FID is worse than ``champion * (1 + tolerance)`` AND the lower end of
    its confidence interval is too, so seed noise alone cannot fail a good model. A champion measured with
    another backbone is not comparable and is ignored (said in the reasons).
    """
    fid, label = float(score["fid"]), score["label"]
    ci_low = float(score.get("fid_ci", [fid, fid])[0])
    reasons, passed = [], True
    if not fid < fid_max:
        passed = False
        reasons.append(f"FID {fid:.3f} is not under the absolute bound {fid_max:g}")
    champ_fid = None
    if champion is None:
        reasons.append("no champion yet: absolute bound only")
    elif champion.get("backbone") != score.get("backbone"):
        reasons.append(
            f"champion was measured with {champion.get('backbone')!r}, this model with {score.get('backbone')!r}: "
            "not comparable, absolute bound only"
        )
    else:
        champ_fid = float(champion["fid"])
        limit = champ_fid * (1 + tolerance)
        if fid > limit and ci_low > limit:
            passed = False
            reasons.append(
                f"FID {fid:.3f} (CI low {ci_low:.3f}) is worse than champion {champ_fid:.3f} +{tolerance:.0%}"
            )
        else:
            reasons.append(f"not worse than champion {champ_fid:.3f} beyond +{tolerance:.0%}")
    return {
        "gate": "fid_gate",
        "passed": passed,
        "fid": fid,
        "label": label,
        "fid_max": fid_max,
        "champion_fid": champ_fid,
        "champion_version": (champion or {}).get("version"),
        "tolerance": tolerance,
        "reasons": reasons,
    }


def prune_gate(fid_before: float, fid_after: float, tolerance: float) -> dict[str, Any]:
    limit = fid_before * (1 + tolerance)
    passed = fid_after <= limit
    verdict = "within" if passed else "beyond"
    return {
        "gate": "prune_gate",
        "passed": passed,
        "fid_before": fid_before,
        "fid_after": fid_after,
        "tolerance": tolerance,
        "reasons": [
            f"FID after pruning {fid_after:.3f} vs before {fid_before:.3f}: {verdict} +{tolerance:.0%}"
        ],
    }
