"""The portal's roles beyond fleet membership."""

# Members of this Django auth group are support staff: they read every fleet
# and use the troubleshooting tools.
SUPPORT_GROUP = "Support"
