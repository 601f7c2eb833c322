import os

from django.core.wsgi import get_wsgi_application

from config.memory import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
freeze_startup_objects()  # config/memory.py: no long pauses for full collections
