"""byoc.localregistry without starting anything: the htpasswd accepts moto's ECR password,
and the registry config binds to loopback only."""

from __future__ import annotations

import bcrypt
import yaml

from byoc import localregistry


def test_moto_password_is_the_one_in_moto_s_ecr_token(monkeypatch):
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    assert localregistry.moto_password() == "123456789012-auth-token"
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "111122223333")
    assert localregistry.moto_password() == "111122223333-auth-token"


def test_htpasswd_line_is_a_bcrypt_hash_of_the_password():
    user, hashed = localregistry.htpasswd_line("AWS", "123456789012-auth-token").split(":", 1)
    assert user == "AWS"
    assert bcrypt.checkpw(b"123456789012-auth-token", hashed.encode())
    assert not bcrypt.checkpw(b"wrong", hashed.encode())


def test_config_listens_on_loopback_with_htpasswd_auth(tmp_path):
    path = localregistry.write_config(tmp_path / "reg", 5999, {"AWS": "pw"})
    conf = yaml.safe_load(path.read_text())
    assert conf["http"]["addr"] == "127.0.0.1:5999"
    assert conf["auth"]["htpasswd"]["path"] == str(tmp_path / "reg" / "htpasswd")
    assert conf["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "reg" / "data")
    assert (tmp_path / "reg" / "htpasswd").stat().st_mode & 0o077 == 0
