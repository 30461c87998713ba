"""The admins' mail pages (debug mode only)."""

from django.urls import path

from connections.mail import views

urlpatterns = [
    path("mail/", views.outbox_list, name="mail_outbox"),
    path("mail/<int:pk>/", views.outbox_detail, name="mail_outbox_detail"),
    path("mail/<int:pk>/html", views.outbox_html, name="mail_outbox_html"),
    path("mail/<int:pk>/retry/", views.outbox_retry, name="mail_outbox_retry"),
]
