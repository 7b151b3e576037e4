from shequtong_kit.db import kit_metadata, run_alembic_env
from shequtong_volunteers.models import Base

run_alembic_env([Base.metadata, kit_metadata])
