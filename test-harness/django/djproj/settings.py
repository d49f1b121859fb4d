"""Minimal Django project with django-mfa2, only for building a migration test database."""
import os

SECRET_KEY = "edge-mfa-test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "mfa",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "djproj.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth"]},
    }
]
if os.environ.get("DJANGO_PG_PORT"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("DJANGO_PG_NAME", "postgres"),
            "USER": os.environ.get("DJANGO_PG_USER", "postgres"),
            "HOST": os.environ.get("DJANGO_PG_HOST", "127.0.0.1"),
            "PORT": os.environ["DJANGO_PG_PORT"],
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["DJANGO_DB_PATH"],
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "mfa.recovery.Hash",
]

# django-mfa2 settings (see ../../../shared/reference/django-mfa2.md).
MFA_UNALLOWED_METHODS = ()
MFA_LOGIN_CALLBACK = "djproj.urls.login_callback"
MFA_RECHECK = False
TOKEN_ISSUER_NAME = "edge-mfa test"
U2F_APPID = os.environ.get("U2F_APPID", "https://localhost")
FIDO_SERVER_ID = os.environ.get("FIDO_SERVER_ID", "localhost")
FIDO_SERVER_NAME = "edge-mfa test"
RECOVERY_ITERATION = int(os.environ.get("RECOVERY_ITERATION", "10000"))
MFA_OWNED_BY_ENTERPRISE = False
