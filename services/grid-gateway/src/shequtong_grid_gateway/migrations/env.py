from shequtong_grid_gateway.models import Base
from shequtong_kit.db import kit_metadata, run_alembic_env

run_alembic_env([Base.metadata, kit_metadata])
