"""The bench URLconf: the product's URLs and the dispatch floor (floor.py)."""

from __future__ import annotations

import product
from django.urls import path
from floor import floor

urlpatterns = [*product.url_patterns(), path("bench/floor/<str:job>", floor, name="bench-floor")]
