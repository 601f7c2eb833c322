"""Test settings: the real settings plus a test-only app whose model exercises object grants."""
from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.grants"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # test users only; speed
# Live-server threads must not keep connections past their request, or dropping the test database
# at the end finds "other sessions using it".
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
