"""Builds a real django-mfa2 database for the edge-mfa migration test.

Usage: DJANGO_DB_PATH=/tmp/x.sqlite3 python make_db.py > secrets.json

Factors are enrolled through django-mfa2's own views (TOTP, recovery codes, FIDO2) with
Django's test client, so the rows are exactly what django-mfa2 writes. Rows whose views need
a phone, mail or a library that no longer works (Email, Trusted Device, U2F: see u2f_key) are
made through django-mfa2's model the way its views fill them. Prints what the test needs to sign in afterwards: TOTP secrets,
recovery codes, and the FIDO2/U2F private keys (P-256 scalars) with their credential ids.
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

import pyotp  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from fido2.cose import ES256  # noqa: E402
from fido2.utils import websafe_decode, websafe_encode  # noqa: E402
from fido2.webauthn import (  # noqa: E402
    Aaguid,
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)
from mfa.models import User_Keys  # noqa: E402

ORIGIN = os.environ.get("FIDO_ORIGIN", "http://localhost")


def b64(b):
    return websafe_encode(b)


def scalar(priv):
    return b64(priv.private_numbers().private_value.to_bytes(32, "big"))


def client_for(username, email=""):
    user = User.objects.create_user(username, email=email, password="pw-" + username)
    c = Client()
    c.force_login(user)
    return c


def enroll_totp(c):
    r = c.get("/mfa/totp/getToken")
    assert r.status_code == 200, r.content
    secret = r.json()["secret_key"]
    r = c.get("/mfa/totp/verify", {"key": secret, "answer": pyotp.TOTP(secret).now()})
    assert r.status_code == 200 and b"Error" not in r.content, r.content
    return secret


def enroll_recovery(c):
    r = c.get("/mfa/recovery/genTokens")
    assert r.status_code == 200, r.content
    return r.json()["keys"]


def enroll_fido2(c):
    """A software authenticator answering django-mfa2's begin_reg/complete_reg ("none" attestation)."""
    r = c.get("/mfa/fido2/begin_reg")
    assert r.status_code == 200, r.content
    opts = r.json()["publicKey"]
    rp_id = opts["rp"]["id"]
    priv = ec.generate_private_key(ec.SECP256R1())
    cred_id = os.urandom(32)
    acd = AttestedCredentialData.create(Aaguid(b"\x00" * 16), cred_id, ES256.from_cryptography_key(priv.public_key()))
    flags = AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV | AuthenticatorData.FLAG.AT
    auth_data = AuthenticatorData.create(hashlib.sha256(rp_id.encode()).digest(), flags, 0, acd)
    att = AttestationObject.create("none", auth_data, {})
    cdj = CollectedClientData.create(
        type="webauthn.create", challenge=websafe_decode(opts["challenge"]), origin=ORIGIN
    )
    body = {
        "id": b64(cred_id),
        "rawId": b64(cred_id),
        "type": "public-key",
        "response": {"clientDataJSON": b64(bytes(cdj)), "attestationObject": b64(bytes(att))},
        "clientExtensionResults": {},
    }
    r = c.post("/mfa/fido2/complete_reg", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] in ("OK", "RECOVERY"), r.content
    return {
        "credential_id": b64(cred_id),
        "private_key": scalar(priv),
        "rp_id": rp_id,
        "user_id": opts["user"]["id"],
    }


def u2f_key(username):
    """A U2F registration stored exactly as django-mfa2's U2F.bind does:
    {"device": json.loads(DeviceRegistration.json), "cert": md5 of the attestation cert PEM}.

    U2F.bind itself cannot run any more: python-u2flib-server (archived) verifies the
    attestation with `EllipticCurvePublicKey.verifier`, which cryptography removed in 37.
    """
    from u2flib_server.model import DeviceRegistration

    priv = ec.generate_private_key(ec.SECP256R1())
    point = priv.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key_handle = os.urandom(64)
    device = DeviceRegistration(
        version="U2F_V2",
        keyHandle=b64(key_handle),
        appId=settings.U2F_APPID,
        publicKey=b64(point),
        transports=["usb"],
    )
    uk = User_Keys(
        username=username,
        key_type="U2F",
        properties={"device": json.loads(device.json), "cert": hashlib.md5(point).hexdigest()},
    )
    uk.save()
    return {"credential_id": b64(key_handle), "private_key": scalar(priv), "appid": settings.U2F_APPID}


def main():
    call_command("migrate", verbosity=0)
    out = {"recovery_iterations": settings.RECOVERY_ITERATION}

    # alice: everything django-mfa2 offers.
    c = client_for("alice", "alice@example.com")
    alice = {
        "totp_secret": enroll_totp(c),
        "fido2": enroll_fido2(c),
        "recovery_codes": enroll_recovery(c),
    }
    User_Keys(username="alice", key_type="Email").save()
    User_Keys(
        username="alice",
        key_type="Trusted Device",
        properties={"key": "ABC123", "status": "trusted", "user_agent": "Mozilla/5.0"},
    ).save()
    out["alice"] = alice

    # bob: a U2F key, a disabled enterprise-owned TOTP, an old (superseded) recovery set.
    c = client_for("bob")
    bob = {"u2f": u2f_key("bob"), "disabled_totp_secret": enroll_totp(c)}
    User_Keys.objects.filter(username="bob", key_type="TOTP").update(enabled=False, owned_by_enterprise=True)
    bob["recovery_codes"] = enroll_recovery(c)
    out["bob"] = bob

    # carol: one broken row next to a good one (the good one is imported, the broken one reported).
    c = client_for("carol")
    out["carol"] = {"totp_secret": enroll_totp(c)}
    User_Keys(username="carol", key_type="FIDO2", properties={"device": "AAAA", "type": "none"}).save()

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
