"""Parses a /metrics text (standard input) with prometheus_client's parser
for the format named on the command line, and prints what it understood as
one JSON array: [{"name", "type", "unit", "samples": [{"name", "labels",
"value"}]}]. A text the parser rejects makes it exit non-zero with the
parser's message.

Usage: parse_metrics.py prometheus|openmetrics < text
"""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus


def main() -> int:
    formats = {"prometheus": parse_prometheus, "openmetrics": parse_openmetrics}
    if len(sys.argv) != 2 or sys.argv[1] not in formats:
        print(__doc__, file=sys.stderr)
        return 2
    text = sys.stdin.read()
    try:
        families = list(formats[sys.argv[1]](text))
    except Exception as error:  # the parser's own message is the point
        print(f"{sys.argv[1]} parser rejected the text: {error!r}", file=sys.stderr)
        return 1
    out = []
    for family in families:
        out.append(
            {
                "name": family.name,
                "type": family.type,
                "unit": family.unit,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": repr(float(s.value))}
                    for s in family.samples
                ],
            }
        )
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
