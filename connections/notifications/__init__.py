"""Notifications for managers and support, by e-mail, as each user chooses."""
