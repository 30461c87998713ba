"""The notification settings form: an address and a box per kind."""

from __future__ import annotations

from typing import Any

from django import forms

from connections.models import NotificationChoice, NotificationKind, user_is_support


class NotificationForm(forms.Form):
    email = forms.EmailField(
        label="Your e-mail address",
        required=False,
        help_text="Notifications go here; without one you get none.",
    )

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.kinds = [
            kind
            for kind in NotificationKind
            if kind not in NotificationKind.for_support() or user_is_support(user)
        ]
        self.initial.setdefault("email", user.email)
        for kind in self.kinds:
            self.fields[kind.value] = forms.BooleanField(label=kind.label, required=False)
            self.initial.setdefault(kind.value, NotificationChoice.wanted(user, kind))

    def save(self) -> None:
        if self.cleaned_data["email"] != self.user.email:
            self.user.email = self.cleaned_data["email"]
            self.user.save(update_fields=["email"])
        for kind in self.kinds:
            NotificationChoice.choose(self.user, kind, self.cleaned_data[kind.value])

    def kind_fields(self) -> list[forms.BoundField]:
        return [self[kind.value] for kind in self.kinds]
