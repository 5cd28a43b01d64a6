"""Django's date and time formats for the admin, in place of the locale's (settings.FORMAT_MODULE_PATH)."""
