#!/usr/bin/env python3
"""Vendor a CustomResourceDefinition's schema for the offline deploy tests.

    scripts/vendor-crd-schema.py CRD.yaml VERSION OUT.json

Reads a CRD (a file, or an https:// URL), takes the ``openAPIV3Schema`` of the served
``VERSION`` and writes it as JSON without its ``description`` texts (they are most of a
CRD's size and no part of validation). tests/deploy/data/README.md lists the sources.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items()
                if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def main(source: str, version: str, out: str) -> int:
    if source.startswith("https://"):
        with urllib.request.urlopen(source, timeout=60) as response:
            text = response.read().decode()
    else:
        text = Path(source).read_text()
    crd = next(doc for doc in yaml.safe_load_all(text)
               if doc and doc.get("kind") == "CustomResourceDefinition")
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema = {
        "x-crd": {"group": crd["spec"]["group"], "kind": crd["spec"]["names"]["kind"],
                  "version": version},
        **strip_descriptions(served["schema"]["openAPIV3Schema"]),
    }
    Path(out).write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
