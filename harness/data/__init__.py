"""Reading task files from disk: JSON lines, data-root layout, and seeded subsets."""
