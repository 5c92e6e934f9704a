"""Session establishment: PASE (passcode) and CASE (certificates), both roles, sans-IO."""
