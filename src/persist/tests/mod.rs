mod dir;
mod record;
mod segment;
