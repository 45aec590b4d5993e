"""A studyset shaped like a real NeuroStore export, with the mess real exports hold.

Built from the bundled pain studyset (21 studies with images, conditions and weights, as
NeuroStore writes them), then changed the way real exports differ from curated data:

* points whose space is ``OTHER``, ``UNKNOWN``, ``""`` or absent, and Talairach points;
* studies without sample sizes;
* an analysis whose foci all fall in holes of the brain mask (the ventricles);
* an analysis with foci just beyond the edge of the volume, whose kernels still reach it;
* an analysis whose foci lie far outside the volume (no kernel reaches the mask);
* an image-only analysis (no points).
"""

import copy
import json

from dmeta.datasets import example_path

#: How each messy case is labelled; tests assert on these.
SPACES = {3: "OTHER", 5: "UNKNOWN", 7: "", 9: None, 11: "TAL"}
NO_SAMPLE_SIZE = (2, 4, 6)
VENTRICLES = [[16.0, -22.0, 24.0], [-8.0, -8.0, 22.0], [-18.0, -34.0, 18.0]]
BEYOND_EDGE = [[0.0, -128.0, 10.0], [92.0, -20.0, 10.0], [40.0, -20.0, 10.0]]
FAR_AWAY = [[0.0, 0.0, 300.0], [250.0, 10.0, 0.0]]


def _study(study_id, points, sample_size=None):
    metadata = {"sample_sizes": [sample_size]} if sample_size else {}
    return {
        "id": study_id, "name": study_id, "authors": "", "publication": "", "metadata": {},
        "analyses": [{
            "id": "1", "name": "1", "conditions": [{"name": "default", "description": ""}],
            "weights": [1.0], "images": [], "metadata": metadata,
            "points": [{"space": "MNI", "coordinates": xyz, "kind": "unknown", "values": []}
                       for xyz in points],
        }],
    }


def neurostore_document():
    """The export as a parsed NIMADS studyset (a dict)."""
    document = json.loads(example_path("pain").read_text())
    document = copy.deepcopy(document)
    studies = document["studies"]
    for index, label in SPACES.items():
        for point in studies[index]["analyses"][0]["points"]:
            if label is None:
                point.pop("space")
            else:
                point["space"] = label
    for index in NO_SAMPLE_SIZE:
        studies[index]["analyses"][0]["metadata"] = {}
    studies += [
        _study("ventricles", VENTRICLES, 14),
        _study("edge", BEYOND_EDGE, 22),
        _study("far", FAR_AWAY, 18),
        _study("imageonly", [], 30),
    ]
    return document


def write_neurostore_export(directory):
    """Write the export as ``studyset.json`` in ``directory``; returns the file path."""
    path = directory / "neurostore_studyset.json"
    path.write_text(json.dumps(neurostore_document(), indent=1))
    return path
