-- +goose Up
-- preset_set names the presets and ladder an image's variants were made
-- with (imaging.Config.PresetSet); NULL for images made before it was
-- recorded. reprocess_queued is the preset set pms reprocess last queued
-- the image for, so that a run cut short resumes where it stopped instead
-- of queueing the same images again.
ALTER TABLE product_images ADD COLUMN preset_set text, ADD COLUMN reprocess_queued text;

-- +goose Down
ALTER TABLE product_images DROP COLUMN preset_set, DROP COLUMN reprocess_queued;
