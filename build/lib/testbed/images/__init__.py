"""Offline images: Debian rootfs (debootstrap) + PyPI artefacts, cached by content."""

from .build import Recipe, Rootfs, build_all, build_image, bundle, cache_dir
from .recipes import ALL_RECIPES, APP_RECIPES, BROKER, DRIVER, FLINK, NODE, ROUTER

__all__ = ["Recipe", "Rootfs", "build_all", "build_image", "bundle", "cache_dir",
           "ALL_RECIPES", "APP_RECIPES", "NODE", "ROUTER", "FLINK", "BROKER", "DRIVER"]
