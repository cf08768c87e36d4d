"""The exported model's speed: the SavedModel against the library (`export_speed`) and the
served model through REST under each thread and oneDNN setting (`serving_speed`)."""
