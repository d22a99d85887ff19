"""Write the HTML help page of every StackSR algorithm (help/<algorithm>.html) from its definition:
what it does (its help text), every parameter with its default, its outputs, and a typical runtime.
The Help button of each algorithm's dialog opens its page. Run with `make help-pages`; a test checks
that the shipped pages are what this writes."""
from __future__ import annotations

import html
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELP_DIR = os.path.join(ROOT, "help")
# measured on the make demo sample (8 Landsat dates of 61 x 61 px, x3) on 2 CPU cores, 2026-11-26
RUNTIME = {
    "estimatekernels": "about 25 s for 8 images of 61 x 61 px (joint mode, 2 CPU cores); per-image mode about 7 x longer",
    "trainselfsupervised": "about 60 s for 300 steps on 8 images of 61 x 61 px (2 CPU cores); much faster on a GPU",
    "superresolve": "about 7 s with TTF for 8 images of 61 x 61 px at x3 (2 CPU cores); PIUNet costs about "
                    "0.3 ms per LR pixel on 2 cores, so a 1000 x 1000 px stack takes minutes",
    "superresolveclassic": "about 2 s of IBP for 8 images of 61 x 61 px at x3",
    "score": "under a second",
}


def page(alg) -> str:
    """One algorithm's page."""
    rows = []
    definitions = alg.parameterDefinitions()
    if alg.name() == "stacksr_chain":  # a model's outputs come in hash order: sorted, so the page is stable
        definitions = sorted(definitions, key=lambda d: (d.isDestination(), d.name()))
    for p in definitions:
        default = p.defaultValue()
        if p.type() == "enum" and default is not None:
            default = p.options()[int(default)]
        advanced = bool(p.flags() & p.Flag.FlagAdvanced)
        rows.append(f"<tr><td><code>{p.name()}</code></td><td>{html.escape(p.help() or p.description())}</td>"
                    f"<td>{html.escape('' if default in (None, '') else str(default))}</td>"
                    f"<td>{'advanced' if advanced else ''}{' optional' if p.flags() & p.Flag.FlagOptional else ''}</td></tr>")
    outputs = "".join(f"<li><code>{o.name()}</code>: {html.escape(o.description())}</li>" for o in alg.outputDefinitions())
    text = "".join(f"<p>{html.escape(par)}</p>" for par in alg.shortHelpString().split("\n\n"))
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(alg.displayName())}</title>"
            "<style>body{font-family:sans-serif;max-width:52em;margin:1em auto;line-height:1.4}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}</style>"
            f"</head><body>\n<h1>{html.escape(alg.displayName())}</h1>\n<p><code>{alg.id()}</code></p>\n{text}\n"
            "<h2>Parameters</h2>\n<table><tr><th>name</th><th>meaning</th><th>default</th><th></th></tr>\n"
            + "\n".join(rows) + f"\n</table>\n<h2>Outputs</h2>\n<ul>{outputs}</ul>\n"
            f"<h2>Typical runtime</h2>\n<p>{html.escape(RUNTIME.get(alg.name(), ''))}</p>\n</body></html>\n")


def build() -> dict[str, str]:
    """{file name: page} for every algorithm of the provider."""
    from qgis.core import QgsApplication

    from stacksr.processing_provider.provider import StackSRProvider

    # from the registry: the shipped model's outputs come from its steps, found there
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("stacksr")
    if provider is None:
        build.provider = provider = StackSRProvider()  # kept alive: the registry does not own it
        registry.addProvider(provider)
    return {f"{alg.name()}.html": page(alg) for alg in provider.algorithms()}


def main() -> None:
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    os.makedirs(HELP_DIR, exist_ok=True)
    for name, text in build().items():
        with open(os.path.join(HELP_DIR, name), "w", encoding="utf-8") as fh:
            fh.write(text)
        print("wrote", os.path.join("help", name))


if __name__ == "__main__":
    sys.exit(main())
