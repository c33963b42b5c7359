"""Board profiles (pin maps) shipped with intercom, installed as intercom.boards."""
