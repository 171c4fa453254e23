"""Write one benchmark's section of docs/BENCHMARKS.md, leaving the other sections as they are."""

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
