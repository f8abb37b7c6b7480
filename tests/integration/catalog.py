"""The catalog the integration tests run against: the local renderer, the
seed page's model name pointed at it through an alias, and a restricted
model to exercise the 400 rules."""

LOCAL = {
    "name": "vidgate-local",
    "description": "vidgate's built-in offline renderer (not a generative "
                   "model)",
    "provider": "local",
    "modalities": ["t2v", "i2v"],
    "resolutions": ["480P", "720P", "1080P"],
    "aspect_ratios": ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"],
    "durations": {"min": 4, "max": 12},
    "fps": [24, 25, 30],
    "audio": True,
    "price": {"per_second": {"480P": 1, "720P": 2, "1080P": 4},
              "audio_factor": 1.5, "flex_factor": 0.5},
}

RESTRICTED = {
    "name": "restricted-t2v",
    "description": "a model with narrow limits, for tests",
    "provider": "local",
    "modalities": ["t2v"],
    "resolutions": ["720P"],
    "aspect_ratios": ["16:9", "9:16"],
    "durations": [5, 10],
    "fps": [24],
    "audio": False,
    "price": {"per_second": {"720P": 3}, "audio_factor": 1,
              "flex_factor": 0.5},
}

CONFIG = {
    "starting_credits": 100000,
    "models": [
        LOCAL,
        {"name": "seedance-v1.5-pro-t2v", "alias_of": "vidgate-local"},
        RESTRICTED,
    ]
}
