"""hypothesis strategies for hostile input: any JSON, JSON shaped like each message or body
but with wrong, missing, extra or extreme fields, and raw text that is barely JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# Placeholders a test swaps for live values (a real call token, a real session id...).
LIVE = "\x00live:"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "\u202e", "é" * 30, "0", "-1", "true", "null", "x" * 2000])
)
any_json = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass(frozen=True)
class Field:
    """A field's plausible values (so the code behind validation runs) and, for mangled
    messages, anything at all."""

    plausible: st.SearchStrategy[Any]

    @property
    def anything(self) -> st.SearchStrategy[Any]:
        return st.one_of(self.plausible, any_json)


def field(*plausible: Any) -> Field:
    return Field(st.sampled_from(plausible))


def well_formed(fields: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({name: f.plausible for name, f in fields.items()})


@st.composite
def one_wrong(draw: st.DrawFn, fields: dict[str, Field]) -> dict[str, Any]:
    """A well-formed object with one field dropped, replaced by anything, or added."""
    data = draw(well_formed(fields))
    name = draw(st.sampled_from([*fields, "zz_extra"]))
    if name in data and draw(st.booleans()):
        del data[name]
    else:
        data[name] = draw(any_json)
    return data


def mangled(fields: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the fields, each plausible or anything, and maybe a stray one."""
    optional = {name: f.anything for name, f in fields.items()}
    return st.fixed_dictionaries({}, optional={**optional, "zz_extra": any_json})


def shaped(fields: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects like a model with ``fields``: a third each well-formed, one field wrong,
    mangled."""
    return st.one_of(well_formed(fields), one_wrong(fields), mangled(fields))


def nested(fields: dict[str, Field]) -> Field:
    """An object-valued field: well-formed when plausible, else anything like it."""
    return _Nested(well_formed(fields), fields)


@dataclass(frozen=True)
class _Nested(Field):
    fields: dict[str, Field]

    @property
    def anything(self) -> st.SearchStrategy[Any]:
        return st.one_of(shaped(self.fields), any_json)


def raw_text(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """Frames that are not quite JSON: cut short, doubled, nested too deep, other text;
    all under the signaling frame limit (64 KiB), which closes the socket by design."""
    dumped = documents.map(lambda d: json.dumps(d))
    return st.one_of(
        st.text(max_size=200),
        st.tuples(dumped, st.integers(min_value=0, max_value=200)).map(lambda p: p[0][: p[1]]),
        dumped.map(lambda text: text + text),
        st.integers(min_value=1, max_value=30_000).map(lambda depth: "[" * depth + "]" * depth),
        st.integers(min_value=1, max_value=12_000).map(lambda depth: '{"a":' * depth + "1"),
        st.sampled_from(
            [
                '{"type": "ping", "id": 1e400}',
                '{"type": "ping", "id": 9' + "9" * 5000 + "}",
                '{"type": "ping", "type": "hello", "auth_token": "x"}',
                '{"type": "signal", "to": "x", "candidate": {"candidate": "\\ud800"}}',
                '{"type": "ping", "id": NaN}',
                '{"type": "ping"}\x00',
                "\ufeff{}",
            ]
        ),
    )
