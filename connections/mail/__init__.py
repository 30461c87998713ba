"""E-mail: the outbox (`outbox`), rendering in the recipient's language (`compose`),
the worker's delivery task (`tasks`), and `make run`'s local SMTP server (`sink`)."""
