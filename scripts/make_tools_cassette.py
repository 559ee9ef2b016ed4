"""Regenerate ``aiml_magics/cassettes/tools.json``, the example tool exchange that
``notebooks/tools.ipynb`` replays offline.

It is recorded from the loopback test server (tests/fakeapi.py), not from a language model, and
every recording says so. The function below must stay identical to the notebook's, so that the
notebook's requests match the recordings.
Run: ``PYTHONPATH=. python3 scripts/make_tools_cassette.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from aiml_magics import Session
from aiml_magics.cassette import Cassette
from aiml_magics.sources import RecordingSource
from tests.fakeapi import FakeAIMLAPI, Reply, ToolModel

TARGET = Path(__file__).resolve().parent.parent / "aiml_magics" / "cassettes" / "tools.json"
LABEL = ("example exchange recorded from the loopback test server (tests/fakeapi.py), "
         "not from a language model")


def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """The current weather in a city.

    Args:
        city: The city's name, e.g. Paris.
        unit: C for Celsius, F for Fahrenheit.
    """
    return "Sunny, 21 °C" if unit == "C" else "Sunny, 70 °F"


def main() -> None:
    TARGET.unlink(missing_ok=True)
    tape = Cassette(TARGET, description="An example tool exchange for notebooks/tools.ipynb.")
    with FakeAIMLAPI(key=None) as api:
        api.queue(
            ToolModel(calls=[("get_weather", {"city": "Paris"})]),
            Reply(content="It is sunny in Paris right now, 21 °C: a good afternoon for a walk "
                          "along the Seine."),
        )
        session = Session(api_key="offline-example", base_url=api.base_url,
                          source=RecordingSource(tape))
        session.chat("What's the weather in Paris right now?", tools=[get_weather])
    data = json.loads(TARGET.read_text(encoding="utf-8"))
    for recording in data["recordings"]:
        recording["source"] = {"kind": "example", "description": LABEL}
        recording["response"]["model"] = "example (loopback test server)"
    TARGET.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {TARGET} ({len(data['recordings'])} recordings)")


if __name__ == "__main__":
    main()
