"""The WSGI application (gunicorn: ``rapport.wsgi:application``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapport.settings")
application = get_wsgi_application()

# Load every app's URLs (and with them the views, forms and API schemas) now, then move all
# that lives as long as the process out of the collector's reach: a full collection walked
# it on some requests (~50 ms pauses on pages that build a few thousand objects; see
# bench/README.md, "Work desk and calendar at full size").
get_resolver().url_patterns  # noqa: B018 - loads them
gc.collect()
gc.freeze()
