"""Microsoft Teams front end (Teams SDK, `microsoft-teams-apps`): the same use cases and
words as the Slack bot over the same engine, as Adaptive Cards (DESIGN 3)."""

import warnings

# The SDK warns at import that a preview feature we do not use (HTML widgets) may change;
# a warning on every start would read as a problem in the service log.
warnings.filterwarnings("ignore", message="HtmlWidgetSecurityPolicy is in preview")
