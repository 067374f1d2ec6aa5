"""Assertions the job tests share."""
import pyarrow as pa

from pipeline.schema import document_problems


def validate_table(table: pa.Table) -> None:
    """Raise ValueError naming the first invalid document of a docs table."""
    for row in table.select(["doc_id", "texts", "images", "image_meta"]).to_pylist():
        problems = document_problems(row)
        if problems:
            raise ValueError(f"document {row['doc_id']}: {'; '.join(problems)}")
