from django.urls import path, register_converter

from rapport.parties import views


class PartyTypeConverter:
    regex = "company|person"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PartyTypeConverter, "party")

urlpatterns = [
    path("companies/", views.company_list, name="company-list"),
    path("companies/export/", views.company_export, name="company-export"),
    path("companies/new/", views.company_create, name="company-create"),
    path("companies/<int:company_id>/", views.company_detail, name="company-detail"),
    path("companies/<int:company_id>/edit/", views.company_edit, name="company-edit"),
    path("people/", views.person_list, name="person-list"),
    path("people/export/", views.person_export, name="person-export"),
    path("people/new/", views.person_create, name="person-create"),
    path("people/<int:person_id>/", views.person_detail, name="person-detail"),
    path("people/<int:person_id>/edit/", views.person_edit, name="person-edit"),
    path("<party:object_type>/<int:object_id>/delete/", views.party_delete, name="party-delete"),
    path("<party:object_type>/<int:object_id>/restore/", views.party_restore, name="party-restore"),
    path("<party:object_type>/<int:object_id>/relations/", views.relation_add, name="relation-add"),
    path("pick/<party:object_type>/", views.picker, name="picker"),
]
