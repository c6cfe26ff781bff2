"""Gate decisions: plain functions of scores, so the asset stores the decision the check shows, and the
export can take it again from the stored numbers under the config in force, however it was launched.

A champion is compared only when it was scored in the same run under the same protocol (ganlib's
``comparison_problems`` decides what "same" means); a stored number from another run is never used.
"""

from __future__ import annotations

from typing import Any

from ganlib.metrics import ScoreReport, comparison_problems
from pipelines.types import GateDecision


def _champion_check(
    score: dict[str, Any], champion: dict[str, Any] | None, tolerance: float, what: str
) -> tuple[bool, str, float | None]:
    """(passed, reason, champion FID used). A regression is real when the mean FID is worse than
    ``champion * (1 + tolerance)`` AND so is the lower end of its 95% interval over fake seeds: noise alone
    cannot fail. Both were scored against the same reference in this run, so the reference's own noise is
    common to both and not part of this comparison's uncertainty (it is in the absolute interval)."""
    if champion is None:
        return True, "no champion yet: absolute bound only", None
    if champion.get("unscorable"):
        why = champion["unscorable"]
        return (
            True,
            f"champion {champion.get('version')} could not be scored here ({why}): not compared",
            None,
        )
    problems = comparison_problems(ScoreReport.from_dict(score), ScoreReport.from_dict(champion))
    if problems:
        return True, f"champion {champion.get('version')} not comparable ({'; '.join(problems)})", None
    interval = score.get("fid_ci_fake_only") or score["fid_ci"]
    fid, ci_low, champ = float(score["fid"]), float(interval[0]), float(champion["fid"])
    limit = champ * (1 + tolerance)
    where = f"champion {champion.get('version')} (re-scored in this run: {champ:.3f})"
    if fid > limit and ci_low > limit:
        return (
            False,
            f"{what} FID {fid:.3f} (CI low {ci_low:.3f}) is worse than {where} +{tolerance:.0%}",
            champ,
        )
    return (
        True,
        f"{what} FID {fid:.3f} (CI low {ci_low:.3f}) is no real regression beyond +{tolerance:.0%} of {where}",
        champ,
    )


def fid_gate_decision(
    score: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    fid_max: float,
    tolerance: float,
    judged_sha256: str,
    settings_digest: str,
) -> GateDecision:
    """Pass when FID is under ``fid_max`` and not a real regression against the champion."""
    fid = float(score["fid"])
    reasons, passed = [], True
    if not fid < fid_max:
        passed = False
        reasons.append(f"FID {fid:.3f} is not under the absolute bound {fid_max:g}")
    ok, reason, champ = _champion_check(score, champion, tolerance, "this model's")
    passed &= ok
    reasons.append(reason)
    return _decision(
        "fid_gate", passed, reasons, fid, fid_max, champ, champion, judged_sha256, settings_digest
    )


def prune_gate_decision(
    fid_before: float,
    pruned_score: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    tolerance: float,
    champion_tolerance: float,
    judged_sha256: str,
    settings_digest: str,
) -> GateDecision:
    """Pass when pruning did not make FID worse beyond ``tolerance`` and the pruned model (the one that
    would ship) is not a real regression against the shipped champion: both sides of that comparison
    are exported, pruned models, scored in the same run."""
    fid_after = float(pruned_score["fid"])
    limit = fid_before * (1 + tolerance)
    passed = fid_after <= limit
    verdict = "within" if passed else "beyond"
    reasons = [f"FID after pruning {fid_after:.3f} vs before {fid_before:.3f}: {verdict} +{tolerance:.0%}"]
    ok, reason, champ = _champion_check(pruned_score, champion, champion_tolerance, "the pruned model's")
    reasons.append(reason)
    return _decision(
        "prune_gate",
        passed and ok,
        reasons,
        fid_after,
        limit,
        champ,
        champion,
        judged_sha256,
        settings_digest,
    )


def _decision(
    gate: str,
    passed: bool,
    reasons: list[str],
    fid: float,
    limit: float,
    champ: float | None,
    champion: dict[str, Any] | None,
    judged_sha256: str,
    settings_digest: str,
) -> GateDecision:
    return GateDecision(
        gate=gate,
        passed=passed,
        reasons=reasons,
        judged_sha256=judged_sha256,
        settings_digest=settings_digest,
        fid=fid,
        limit=limit,
        champion_fid=champ,
        champion_version=(champion or {}).get("version") if champ is not None else None,
    )
