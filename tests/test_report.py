"""The HTML report: what it shows for each kind of result, and that it renders in a browser.

The browser checks load the report in Debian's headless Chromium (installed by
``scripts/install-chromium.sh``): every image must decode and the page must log no console
error. A screenshot is kept in ``test-artifacts/`` for a person to look at.
"""

import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dmeta
from dmeta.cli import main
from dmeta.results import MetaResult

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Flags that let Chromium run headless as root on a machine without network or D-Bus.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
]
# Appended to a copy of the page: records, once everything has loaded, whether each image
# decoded, and any script error, in an element that --dump-dom prints.
PROBE = """<script>
var dmetaErrors = [];
window.addEventListener("error", function (e) { dmetaErrors.push(String(e.message)); });
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, ok: img.complete && img.naturalWidth > 0};
  });
  var out = document.createElement("pre");
  out.id = "dmeta-probe";
  out.textContent = JSON.stringify({images: images, errors: dmetaErrors});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="session")
def chromium():
    """Path of Debian's Chromium, installed by the project's script when missing."""
    if not os.path.exists(CHROMIUM):
        if os.geteuid() != 0:
            pytest.skip("chromium is not installed and installing it needs root")
        subprocess.run(["bash", str(ROOT / "scripts" / "install-chromium.sh")], check=True)
    return CHROMIUM


def _run_chromium(chromium, tmp_path, *args):
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=True,
    )


@pytest.fixture(scope="module")
def fwe_result(client, knowledge_ale):
    return dmeta.FWECorrector(n_iters=30, seed=1).transform(knowledge_ale)


@pytest.fixture(scope="module")
def fwe_report(fwe_result, tmp_path_factory):
    return dmeta.report(fwe_result, tmp_path_factory.mktemp("report"))


def _img_sources(html):
    return re.findall(r'<img src="([^"]+)"', html)


def test_report_of_an_fwe_result_shows_inputs_maps_and_nulls(fwe_report):
    html = fwe_report.read_text()
    for heading in ("Inputs", "Methods", "Maps", "Monte Carlo null"):
        assert f"<h2>{heading}</h2>" in html
    assert "Eickhoff, S. B., Bzdok, D." in html  # a reference the methods text cites
    assert "backes2002-analysis_1" in html  # the analyses table
    # the 14 foci outside the mask, kept, in the inputs section
    inputs = html.split("<h2>Inputs</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<h3>Foci outside the mask</h3>" in inputs
    assert "14 foci have their centre outside the analysis mask" in inputs
    sources = _img_sources(html)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    # foci, 3 corrected z maps + uncorrected z, 3 null histograms
    assert len(sources) == 8
    pngs = sorted((fwe_report.parent / "figures").glob("*.png"))
    assert len(pngs) == len(sources)
    assert all(f'href="figures/{png.name}"' in html for png in pngs)


def _parameters(html, heading):
    """The ``<dt>``/``<dd>`` pairs listed under one ``<h4>`` of the Parameters."""
    found = re.search(rf"<h4>{re.escape(heading)}</h4><dl>(.*?)</dl>", html)
    assert found, f"no parameters under {heading!r}"
    return dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", found.group(1)))


def _check_provenance(html, result):
    """The report lists what the corrector ran with, apart from the estimator, and versions."""
    corrector = _parameters(html, "Correction: FWECorrector (corr-FWE_method-montecarlo)")
    record = result.attrs["corrections"]["corr-FWE_method-montecarlo"]
    assert corrector["n_iters"] == str(result.nulls.sizes["iteration"]) == "30"
    assert corrector["seed"] == str(record["seed"])
    assert corrector["voxel_thresh"] == "0.001"
    assert float(corrector["cluster_forming_stat"]) == record["cluster_forming_stat"]
    assert "kernel_fwhm" in _parameters(html, "Estimator: ALE")
    assert _parameters(html, "Software versions")["numpy"] == np.__version__


def test_report_lists_the_parameters_that_ran(fwe_report, fwe_result):
    _check_provenance(fwe_report.read_text(), fwe_result)


def test_report_is_self_contained(fwe_report):
    html = fwe_report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html


def test_report_renders_in_headless_chromium(fwe_report, chromium, tmp_path):
    probe = fwe_report.with_name("probe.html")
    probe.write_text(fwe_report.read_text().replace("</body>", PROBE + "</body>"))
    run = _run_chromium(chromium, tmp_path, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="dmeta-probe">(.*?)</pre>', run.stdout, re.DOTALL)
    assert found, run.stdout[-2000:]
    state = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(state["images"]) == 8
    assert [i["alt"] for i in state["images"] if not i["ok"]] == []
    assert state["errors"] == []
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    _run_chromium(chromium, tmp_path, "--window-size=1280,5000", f"--screenshot={shot}",
                  fwe_report.as_uri())
    assert shot.stat().st_size > 10_000


def test_cli_reports_a_stored_result(fwe_result, tmp_path, capsys):
    store = fwe_result.to_zarr(tmp_path / "run.zarr")
    assert main(["report", str(store), "--html", str(tmp_path / "html")]) == 0
    index = tmp_path / "html" / "index.html"
    assert capsys.readouterr().out.strip() == f"report: {index}"
    html = index.read_text()
    assert "does not keep the foci" in html  # a stored result has no estimator
    _check_provenance(html, fwe_result)
    assert len(_img_sources(html)) == 7


def test_cli_report_of_a_missing_store_is_an_input_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.zarr"), "--html", str(tmp_path)]) == 2
    assert "cannot open result" in capsys.readouterr().err


@pytest.fixture
def pairwise_result(toy_space):
    """A subtraction-like result with diagnostics and a stability map, made up on a toy grid."""
    rng = np.random.default_rng(0)
    n = toy_space.n_voxels
    z = np.zeros(n, np.float32)
    z[:6], z[-4:] = 3.5, -3.0
    target = "z_desc-group1MinusGroup2_corr-FDR_method-indep"
    ids = [f"s{i}-1" for i in range(5)]
    counts = pd.DataFrame({"id": ids, "PositiveTail 1": rng.integers(0, 3, 5)})
    return MetaResult(
        {target: z, "logp_desc-group1MinusGroup2_corr-FDR_method-indep": np.abs(z),
         f"{target}_diag-ResampledStability": rng.uniform(0, 1, n).astype(np.float32)},
        toy_space,
        tables={
            "analyses_desc-group1": pd.DataFrame({"sample_size": [10, 20], "n_foci": [3, 4]}),
            f"{target}_tab-clust": pd.DataFrame({"Cluster ID": ["PositiveTail 1"]}),
            f"{target}_diag-FocusCounter_tab-counts_tail-positive": counts,
            f"{target}_diag-ResampledStability_tab-summary": pd.DataFrame({"n_resamples": [5]}),
            "extra": pd.DataFrame({"a": [1]}),
        },
        description="An ALE subtraction (Laird et al., 2005) with Benjamini-Hochberg FDR.",
    )


def test_report_sections_follow_the_result_contents(pairwise_result, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn on a tiny grid
        html = dmeta.report(pairwise_result, tmp_path).read_text()
    for heading in ("Inputs", "Methods", "Group contrast", "Clusters", "Diagnostics",
                    "Stability", "Other tables"):
        assert f"<h2>{heading}</h2>" in html
    for absent in ("Monte Carlo null", "Predictive FWE cutoffs", "Balanced subtraction"):
        assert absent not in html
    assert "Laird, A. R." in html and "Benjamini, Y., &amp; Hochberg" in html
    # the z map, the FocusCounter heatmap, the stability map and its histogram
    assert len(_img_sources(html)) == 4
    assert "group1" in html and "Sample sizes" in html


def _section(html, heading):
    return html.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]


def _report(result, out_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn on a tiny grid
        return dmeta.report(result, out_dir).read_text()


@pytest.fixture
def contrast_result(toy_space):
    """A subtraction with FWE-corrected difference maps and a contrast workflow's gated maps,
    made up on the toy grid: one significant cluster of the difference, nothing gated."""
    n = toy_space.n_voxels
    z = np.zeros(n, np.float32)
    z[:5] = np.linspace(2.5, 3.5, 5)
    fwe = "corr-FWE_method-montecarlo"
    size = f"desc-group1MinusGroup2Size_level-cluster_{fwe}"
    zeros = np.zeros(n, np.float32)
    maps = {"z_desc-group1MinusGroup2": z, f"z_{size}": np.where(z > 0, 2.0, 0.0),
            f"logp_{size}": np.where(z > 0, 2.0, 0.0),
            f"z_desc-group1MinusGroup2_level-voxel_{fwe}": zeros,
            f"logp_desc-group1MinusGroup2_level-voxel_{fwe}": zeros,
            "z_desc-contrast": zeros, "logp_desc-contrast": zeros,
            "z_desc-group1MainEffect": np.where(z > 0, z, 0.0), "z_desc-conjunction": zeros}
    return MetaResult(maps, toy_space, tables={
        "contrast_tab-metadata": pd.DataFrame([{"alpha": 0.01, "corrector": "FDRCorrector"}])})


def test_contrast_maps_are_shown_at_their_level_with_their_clusters(contrast_result, tmp_path):
    html = _report(contrast_result, tmp_path)
    maps, contrast = _section(html, "Maps"), _section(html, "Group contrast")
    assert "corr-FWE" not in maps and "MainEffect" not in maps
    # the cluster-level map: its cluster, with the peak of the uncorrected difference
    table = "<h3>Clusters of z_desc-group1MinusGroup2Size_level-cluster_corr-FWE_method-"
    assert table in contrast and "PositiveTail 1" in contrast and ">3.5<" in contrast
    assert "level-voxel_corr-FWE_method-montecarlo</code>: no voxel with corrected" in contrast
    # the gated maps: every non-zero voxel, at the workflow's alpha
    assert "alpha = 0.01" in contrast
    assert "z_desc-group1MainEffect: 5 voxels surviving" in contrast
    assert "<h3>Clusters of z_desc-group1MainEffect</h3>" in contrast
    assert "z_desc-contrast</code>: no voxel surviving" in contrast
    assert "<h3>contrast_tab-metadata</h3>" in contrast and "Other tables" not in html
    # uncorrected difference, cluster-level difference, main effect
    assert len(_img_sources(html)) == 3


def test_predictive_cutoffs_section(knowledge_ale, fwe_result, tmp_path):
    from dmeta.reporting.contents import survey
    from dmeta.reporting.html import Page
    from dmeta.reporting.sections import predictive

    html = _report(dmeta.FWECorrector(method="predictive").transform(knowledge_ale), tmp_path)
    record = html.split("<h2>Predictive FWE cutoffs</h2>", 1)[1]
    assert "Frahm, L., Patil, K. R." in html  # cited by the methods text
    assert "voxels passing" in record and "Monte Carlo" not in _section(html, "Maps")
    assert "Monte Carlo critical value" not in record  # no null to compare with

    both = dmeta.FWECorrector(method="predictive").transform(fwe_result)
    body = predictive(Page(tmp_path, ""), both, survey(both))
    assert "Monte Carlo critical value (30 iterations)" in body
    cutoff = both.attrs["corrections"]["corr-FWE_method-predictive"]["cluster_size_cutoff"]
    assert f"<td>{cutoff}</td>" in body


def test_balanced_subtraction_lists_its_maps(toy_space, tmp_path):
    n = toy_space.n_voxels
    diff = np.zeros(n, np.float32)
    diff[:4] = [0.01, -0.02, 0.03, 0.0]
    result = MetaResult({"stat_desc-balancedGroup1MinusGroup2": diff,
                         "prob_desc-group1": np.full(n, 0.5, np.float32)}, toy_space,
                        attrs={"estimator": "BalancedALESubtraction"})
    section = _section(_report(result, tmp_path), "Balanced subtraction")
    assert section.index("stat_desc-balancedGroup1MinusGroup2") < section.index("prob_desc")
    assert "<td>-0.02</td>" in section and "<td>0.5</td>" in section
    assert "stat_desc-balancedGroup1MinusGroup2: 3 voxels non-zero (|value| &gt;" in section


def test_chromium_install_script_is_idempotent(chromium):
    if shutil.which("apt-get") is None:
        pytest.skip("not a Debian system")
    run = subprocess.run(["bash", str(ROOT / "scripts" / "install-chromium.sh")],
                         capture_output=True, text=True, check=True)
    assert run.stdout == run.stderr == ""
