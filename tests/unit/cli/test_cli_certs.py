"""``smartline certs create`` / ``certs trust FILE`` run as real processes."""

import os

from cli_support import sl
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def test_create_writes_a_der_certificate_and_a_pem_key_with_the_uri(tmp_path, env):
    cert, key = tmp_path / "c" / "client.der", tmp_path / "c" / "client.pem"
    r = sl("certs", "create", "--cert", cert, "--key", key, "--uri", "urn:test:filler",
           "--name", "filler-hmi", "--host", "hmi.local", "--host", "127.0.0.1",
           "--days", "30", env=env)
    assert r.returncode == 0, r.stderr
    assert "urn:test:filler" in r.stderr
    c = x509.load_der_x509_certificate(cert.read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:test:filler"]
    assert "hmi.local" in san.get_values_for_type(x509.DNSName)
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    cn = c.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == "filler-hmi"
    assert 29 <= (c.not_valid_after_utc - c.not_valid_before_utc).days <= 31
    k = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert k.public_key().public_numbers() == c.public_key().public_numbers()


def test_create_defaults_to_the_pki_folder_and_refuses_to_overwrite(tmp_path, env):
    r = sl("certs", "create", env=env)
    assert r.returncode == 0, r.stderr
    own = tmp_path / "state" / "pki" / "own"
    c = x509.load_der_x509_certificate((own / "cert.der").read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier)[0].startswith(
        "urn:smartline:")
    assert (own / "key.pem").read_bytes().startswith(b"-----BEGIN")
    before = (own / "cert.der").read_bytes()
    again = sl("certs", "create", env=env)
    assert again.returncode == 2 and "--force" in again.stderr
    assert (own / "cert.der").read_bytes() == before
    forced = sl("certs", "create", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert (own / "cert.der").read_bytes() != before


def test_trust_copies_the_certificate_into_the_trust_list(tmp_path, env):
    cert, key = tmp_path / "server.der", tmp_path / "server.pem"
    assert sl("certs", "create", "--cert", cert, "--key", key, env=env).returncode == 0
    r = sl("certs", "trust", cert, "--dir", tmp_path / "trusted", env=env)
    assert r.returncode == 0, r.stderr
    target = tmp_path / "trusted" / r.stdout.strip().rsplit("/", 1)[-1]
    assert r.stdout.strip() == str(target) and target.suffix == ".der"
    assert target.read_bytes() == cert.read_bytes()
    # the default trust list is PKI/trusted
    d = sl("certs", "trust", cert, env=env)
    assert d.returncode == 0, d.stderr
    assert (tmp_path / "state" / "pki" / "trusted" / target.name).is_file()


def test_trust_refuses_garbage_and_missing_files(tmp_path, env):
    junk = tmp_path / "junk.der"
    junk.write_bytes(b"this is not a certificate")
    r = sl("certs", "trust", junk, "--dir", tmp_path / "trusted", env=env)
    assert r.returncode == 2
    assert "not an X.509 certificate" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "trusted").exists() or not any((tmp_path / "trusted").iterdir())
    missing = sl("certs", "trust", tmp_path / "nope.der", env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_help(env):
    for args in (("certs", "--help"), ("certs", "create", "--help"),
                 ("certs", "trust", "--help"), ("browse", "--help")):
        r = sl(*args, env=env)
        assert r.returncode == 0 and "Usage:" in r.stdout, args


def test_a_missing_opcua_extra_is_named(tmp_path, env):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "cryptography.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'cryptography'\", name='cryptography')\n")
    env["PYTHONPATH"] = os.pathsep.join([str(blocked), env.get("PYTHONPATH", "")])
    r = sl("certs", "create", "--cert", tmp_path / "c.der", "--key", tmp_path / "k.pem",
           env=env)
    assert r.returncode == 2
    assert "pip install 'smartline[opcua]'" in r.stderr and "Traceback" not in r.stderr
