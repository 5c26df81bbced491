"""Build .dvc/offline_plots.html: DVC's plot page with vega, vega-lite and vega-embed inlined.

DVC's own page loads those three from a CDN, so `dvc plots show` renders blank with no network.
This template has no {scripts} placeholder (DVC would put the CDN tags there) and carries the
libraries itself. Rebuild it (the versions match what dvc-render asks the CDN for):

    npm install --prefix /tmp/vega vega@5 vega-lite@5 vega-embed@6
    python tools/build_plot_template.py /tmp/vega/node_modules
"""
import sys
from pathlib import Path

LIBS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")


def main(node_modules: str, out: str = ".dvc/offline_plots.html") -> None:
    scripts = []
    for lib in LIBS:
        js = (Path(node_modules) / lib).read_text(encoding="utf-8")
        if "</script" in js:
            raise SystemExit(f"{lib} contains '</script' and cannot be inlined as is")
        scripts.append(f"<script>/* {lib} */\n{js}\n</script>")
    page = ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n{refresh_tag}\n<title>emosum plots</title>\n"
            + "\n".join(scripts)
            + "\n<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n")
    Path(out).write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(page):,} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:])
