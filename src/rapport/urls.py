from django.urls import include, path

from rapport.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("", include("rapport.accounts.urls")),
    path("", include("rapport.parties.urls")),
    path("", include("rapport.sales.urls")),
    path("", include("rapport.activities.urls")),
    path("", include("rapport.imports.urls")),
    path("", include("rapport.dedupe.urls")),
    path("", include("rapport.messaging.urls")),
    path("", include("rapport.routing.urls")),
    path("", include("rapport.automations.urls")),
    path("", include("rapport.core.urls")),
]
