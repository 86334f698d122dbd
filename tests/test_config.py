from connector.config import DEFAULTS, load_config


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
