"""The recorder's one warning category (raised on the training thread and on the writer's)."""


class RecorderWarning(UserWarning):
    """Something was not recorded (bad input, full queue, failed writer); training goes on."""
