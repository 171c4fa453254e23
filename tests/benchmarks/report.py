"""Write one benchmark's section of docs/BENCHMARKS.md, leaving the other sections as they are."""

import resource
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nReproduce every section with `make bench`; each script rewrites only its own section.\n"


def write_section(name: str, body: str) -> Path:
    """Replace the section between <!-- bench:NAME --> markers (or append it) with `body`."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = PATH.read_text() if PATH.exists() else HEADER
    if not text.startswith("# Benchmarks"):
        text = HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    PATH.write_text(text)
    return PATH


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM), in MB.

    Not getrusage's ru_maxrss: Linux carries it across exec, so a child started by subprocess reports at least the
    parent's peak at the time of the fork (a benchmark's seeding, say).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
