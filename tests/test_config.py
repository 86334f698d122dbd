import pytest

from connector.config import DEFAULTS, ConfigError, load_config


def test_defaults_file_env_and_overrides_merge(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("server: {port: 9000}\nlimits: {min_side: 128}\n")
    env = {"ODCONNECT_LIMITS__MAX_SIDE": "4096", "ODCONNECT_API_KEYS": "a, b",
           "ODCONNECT_STORAGE__ROOT": str(tmp_path / "r")}
    cfg = load_config(f, environ=env, overrides={"server": {"host": "0.0.0.0"}})
    assert cfg["server"] == {"host": "0.0.0.0", "port": 9000, "public_url": "", "tune_malloc": True}
    assert cfg["limits"]["min_side"] == 128 and cfg["limits"]["max_side"] == 4096
    assert cfg["security"]["api_keys"] == ["a", "b"]
    assert cfg["storage"]["database_url"] == f"sqlite:///{tmp_path / 'r' / 'odconnect.db'}"
    # defaults untouched
    assert DEFAULTS["server"]["port"] == 8080 and DEFAULTS["storage"]["database_url"] == ""


@pytest.mark.parametrize("source, message", [
    ({"env": {"ODCONNECT_SERVER__PROT": "9000"}}, "environment variable ODCONNECT_SERVER__PROT: unknown setting server.prot; did you mean server.port?"),
    ({"file": "limits: {min_sid: 3}\n"}, "unknown setting limits.min_sid; did you mean limits.min_side?"),
    ({"file": "sever: {port: 1}\n"}, "unknown setting sever; did you mean server?"),
    ({"overrides": {"inference": {"cache_sise": 2}}}, "overrides: unknown setting inference.cache_sise; did you mean inference.cache_size?"),
    ({"env": {"ODCONNECT_SERVER__PORT": "eighty"}}, "server.port must be int, not str ('eighty')"),
    ({"file": "server: {tune_malloc: 3}\n"}, "server.tune_malloc must be bool, not int (3)"),
    ({"file": "server: 8080\n"}, "server must be dict, not int (8080)"),
    ({"file": "server: [\n"}, "not valid YAML"),
    ({"env": {"ODCONNECT_INFERENCE__ENGINE": "onnx"}},
     "inference.engine must be one of auto, onnxruntime, torch, not 'onnx'"),
])
def test_unknown_keys_and_wrong_kinds_are_errors_naming_the_setting(tmp_path, source, message):
    f = None
    if "file" in source:
        f = tmp_path / "c.yaml"
        f.write_text(source["file"])
    with pytest.raises(ConfigError) as err:
        load_config(f, environ=source.get("env", {}), overrides=source.get("overrides"))
    assert message in str(err.value)


def test_free_form_and_string_settings_keep_what_was_written(tmp_path):
    cfg = load_config(environ={"ODCONNECT_SERVER__HOST": "8080", "ODCONNECT_STORAGE__ROOT": str(tmp_path)},
                      overrides={"training": {"overrides": {"SOLVER.MAX_ITER": 3}}})
    assert cfg["server"]["host"] == "8080"  # not parsed into a number
    assert cfg["training"]["overrides"] == {"SOLVER.MAX_ITER": 3}  # detectron2 keys are not ours


def test_every_setting_is_read_somewhere():
    """A default nobody reads is a setting that silently does nothing."""
    from pathlib import Path
    from connector.config import _known_paths
    source = "\n".join(p.read_text() for p in Path(__file__).resolve().parents[1].joinpath("connector").rglob("*.py")
                       if p.name != "config.py")
    unread = [path for path in _known_paths(DEFAULTS) if "." in path and f'"{path.rsplit(".", 1)[1]}"' not in source]
    assert unread == []
