"""Configuration: every option is registered, and the shipped sample documents all of them."""

import subprocess
import sys

from cotenancy.conf import opts


def test_every_plugin_has_its_own_group():
    groups = dict(opts.list_opts())
    assert "DEFAULT" in groups
    for group in ("vsphere", "nova", "hyperv", "store", "planner", "predict"):
        assert group in groups, f"no [{group}] options"


def test_shipped_sample_config_is_up_to_date(repo_root, tmp_path):
    """etc/cotenancy/cotenancy.conf.sample is what ``tox -e genconfig`` writes today."""
    out = tmp_path / "sample.conf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--namespace",
            "cotenancy",
            "--wrap-width",
            "79",
            "--output-file",
            str(out),
        ],
        check=True,
        cwd=repo_root,
    )
    shipped = (repo_root / "etc/cotenancy/cotenancy.conf.sample").read_text()
    assert out.read_text() == shipped, "run `tox -e genconfig` and commit the sample"


def test_set_override_reaches_plugin_groups(conf):
    conf.set_override("interval", 60)
    assert conf.interval == 60
