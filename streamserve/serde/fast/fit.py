"""The schemas the fast codecs lay out bytes for, and the check that they are in use.

Each fast codec reads or writes Avro bodies byte by byte for one schema: the bundled
``topics/*.avsc`` at the time it was written, kept here in Avro Parsing Canonical Form.
:class:`~streamserve.serde.codecs.Serde` builds a fast codec only when the schema in use
(a user's own ``serde.topics_dir`` may change it) has that canonical form; otherwise the
general codecs (fastavro) do the work, with a WARNING saying so. Changing a bundled schema
means updating its codec and the form here (a unit test compares them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from streamserve.serde.schemas import SchemaCatalog

logger = logging.getLogger(__name__)

WRITTEN_FOR: Mapping[str, str] = {
    "event": (
        '{"name":"streamserve.Event","type":"record","fields":[{"name":"event_id","type":'
        '"string"},{"name":"ts","type":["null","long"]},{"name":"features","type":{"type"'
        ':"map","values":["null","boolean","long","double","string"]}}]}'
    ),
    "example": (
        '{"name":"streamserve.Example","type":"record","fields":[{"name":"event_id","type'
        '":"string"},{"name":"features","type":{"type":"map","values":["null","boolean","'
        'long","double","string"]}},{"name":"label","type":["boolean","long","double","st'
        'ring"]},{"name":"event_ts","type":["null","long"]},{"name":"label_ts","type":["n'
        'ull","long"]}]}'
    ),
    "prediction": (
        '{"name":"streamserve.Prediction","type":"record","fields":[{"name":"event_id","t'
        'ype":"string"},{"name":"model","type":"string"},{"name":"model_version","type":"'
        'long"},{"name":"prediction","type":["null","boolean","long","double","string"]},'
        '{"name":"probabilities","type":["null",{"type":"map","values":"double"}]},{"name'
        '":"score","type":["null","double"]},{"name":"ts","type":["null","long"]},{"name"'
        ':"scored_at","type":"long"},{"name":"decision","type":["null","boolean","long","'
        'double","string"]},{"name":"decision_version","type":["null","long"]},{"name":"r'
        'ole","type":["null","string"]},{"name":"arm","type":["null","string"]},{"name":"'
        'metrics","type":["null",{"type":"map","values":"double"}]}]}'
    ),
}


def fits(catalog: SchemaCatalog, name: str) -> bool:
    """Whether schema ``name`` in ``catalog`` is the one the fast codecs were written for;
    logs a WARNING when it is not (the general codecs then run)."""
    if catalog.canonical_form(name) == WRITTEN_FOR[name]:
        return True
    logger.warning(
        "schema %r differs from the one the fast codecs were written for; its records are "
        "read and written by fastavro (correct, slower)",
        name,
    )
    return False
