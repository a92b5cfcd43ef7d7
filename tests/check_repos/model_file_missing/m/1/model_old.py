typo
