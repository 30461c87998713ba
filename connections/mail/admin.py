"""Django admin for the outbox and the notification choices: read-only rows
(a failed message is retried from the admins' mail page or the upload's e-mails)."""

from django.contrib import admin

from connections.models import MailMessage, NotificationChoice
from connections.web.admin import ReadOnlyAdmin


@admin.register(MailMessage)
class MailMessageAdmin(ReadOnlyAdmin):
    list_display = ["pk", "created_at", "to", "subject", "kind", "state", "attempts", "sent_at"]
    list_filter = ["state", "kind"]
    search_fields = ["to", "subject", "key"]


@admin.register(NotificationChoice)
class NotificationChoiceAdmin(ReadOnlyAdmin):
    list_display = ["user", "kind", "enabled", "changed_at"]
    list_filter = ["kind", "enabled"]
