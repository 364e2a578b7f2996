"""The notifier has no web pages of its own in this example."""

urlpatterns: list = []
