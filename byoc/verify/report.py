"""verify's results: one Check per contract point measured, and the table.

A check is PASS or FAIL only when something was measured. "n/a" means the point does
not apply to this image; "not checked" means it applies but verify could not measure
it here, and says why (never a pass)."""

from __future__ import annotations

import dataclasses

PASS, FAIL, NOT_APPLICABLE, NOT_CHECKED = "PASS", "FAIL", "n/a", "not checked"


@dataclasses.dataclass
class Check:
    cid: str
    title: str
    result: str  # PASS, FAIL, n/a, not checked
    detail: str
    seconds: float | None = None

    @property
    def ok(self) -> bool | None:
        return {PASS: True, FAIL: False}.get(self.result)


def verdict(ok: bool | None) -> str:
    return NOT_APPLICABLE if ok is None else (PASS if ok else FAIL)


@dataclasses.dataclass
class Report:
    image: str
    checks: list[Check]
    ready_s: float | None = None
    first_answer_s: float | None = None

    @property
    def passed(self) -> bool:
        return all(c.result != FAIL for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.result == FAIL]

    def count(self, result: str) -> int:
        return sum(c.result == result for c in self.checks)

    def table(self) -> str:
        rows = [("ID", "result", "check", "detail", "time")]
        for c in self.checks:
            secs = "" if c.seconds is None else f"{c.seconds:.2f}s"
            rows.append((c.cid, c.result, c.title, c.detail, secs))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for i, r in enumerate(rows):
            lines.append("  ".join(r[j].ljust(widths[j]) for j in range(4)) + "  " + r[4])
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ----")
        summary = (f"{self.count(PASS)} passed, {self.count(FAIL)} failed, "
                   f"{self.count(NOT_CHECKED)} not checked, {self.count(NOT_APPLICABLE)} n/a")
        timing = ""
        if self.ready_s is not None:
            timing = f"; start to ready {self.ready_s:.2f}s"
        if self.first_answer_s is not None:
            timing += f", start to first correct answer {self.first_answer_s:.2f}s"
        return "\n".join(lines) + f"\n{summary}{timing}"

    def to_dict(self) -> dict:
        return {"image": self.image, "passed": self.passed, "ready_s": self.ready_s,
                "first_answer_s": self.first_answer_s,
                "checks": [dataclasses.asdict(c) for c in self.checks]}
