"""Example tasks shipped inside the package, so ``jobbers_dev`` works from an installed wheel."""
